"""The C++ program under test: $CENTERNET_CPP_BIN, else build/cpp/centernet_infer, built
(or brought up to date) with CMake from cpp/. Without CMake, a compiler or the C++
libraries the test skips with the reason, except in CI (``CI`` set), where it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY_ENV = "CENTERNET_CPP_BIN"
BUILD_DIR = REPO / "build" / "cpp"
BINARY_NAME = "centernet_infer"


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, which must really run the C++ program."""
    if os.environ.get("CI"):
        pytest.fail(f"C++ program unavailable in CI: {reason}")
    pytest.skip(reason)


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def _tail(done: subprocess.CompletedProcess, lines: int = 15) -> str:
    return "\n".join((done.stdout + done.stderr).strip().splitlines()[-lines:])


def configured(build_dir: Path) -> bool:
    """Whether a configure of ``build_dir`` finished: CMake writes the build system
    (Makefile, or build.ninja) only after every check passed. A CMakeCache.txt alone is
    what a failed configure leaves behind."""
    return (build_dir / "CMakeCache.txt").is_file() and any(
        (build_dir / name).is_file() for name in ("Makefile", "build.ninja")
    )


def missing_package(output: str) -> str | None:
    """The install line our CMake files print for a missing library, if any."""
    for line in output.splitlines():
        if "not found: apt-get install" in line:
            return line.strip()
    return None


def build_binary(build_dir: Path = BUILD_DIR) -> Path:
    """Configure (when no configure has finished) and build cpp/ into ``build_dir``; an
    up-to-date build is a no-op. A failed configure leaves no cache behind, so installing
    the missing library is enough for the next run."""
    if shutil.which("cmake") is None:
        unavailable("cmake is not installed (apt-get install cmake g++)")
    if not configured(build_dir):
        # this interpreter's openvino wheel provides the OpenVINO C++ runtime
        done = _run(
            ["cmake", "-S", "cpp", "-B", str(build_dir), f"-DPython3_EXECUTABLE={sys.executable}"]
        )
        if done.returncode != 0:
            (build_dir / "CMakeCache.txt").unlink(missing_ok=True)
            missing = missing_package(done.stdout + done.stderr)
            reason = f"missing C++ library: {missing}" if missing else "see CMake's output"
            unavailable(f"cmake could not configure cpp/ ({reason}):\n{_tail(done)}")
    done = _run(["cmake", "--build", str(build_dir), "-j2"])
    if done.returncode != 0:
        pytest.fail(f"cpp/ does not build:\n{_tail(done, 40)}")
    return build_dir / BINARY_NAME


@pytest.fixture(scope="session")
def cpp_binary() -> Path:
    given = os.environ.get(BINARY_ENV)
    if given:
        path = Path(given)
        if not path.is_file():
            pytest.fail(f"${BINARY_ENV} names {given}, which does not exist")
        return path
    return build_binary()
