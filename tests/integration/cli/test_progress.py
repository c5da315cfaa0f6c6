"""Progress where no terminal shows bars: a piped `centernet build --precision int8` prints
plain progress lines on stderr (stage, done/total, rate, ETA); --quiet, before or after
the command, prints none, and the build's own lines stay."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from centernet.cli.progress import INTERVAL_ENV

PROGRESS_LINE = re.compile(r"^int8: calibration \(minmax-ma\): (\d+)/(\d+) it \(\d+%\), .* it/s, ")


@pytest.fixture(scope="module")
def calibration(photo_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for photo in photo_paths[:3]:
        shutil.copy(photo, folder / photo.name)
    return folder


def build(model, calibration, out, *quiet: str, before: bool = False):
    command = ["build", str(model), "-o", str(out), "--precision", "int8",
               "--calib-images", str(calibration)]  # fmt: skip
    command = [*quiet, *command] if before else [*command, *quiet]
    env = {**os.environ, INTERVAL_ENV: "0.05"}
    done = subprocess.run(
        [sys.executable, "-m", "centernet.cli", *command],
        capture_output=True, text=True, env=env, timeout=300,  # stderr a pipe: no terminal
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out}: int8")
    return done


def test_a_piped_build_prints_progress_lines_and_quiet_none(
    tiny_onnx_dynamic, calibration, tmp_path
):
    shown = build(tiny_onnx_dynamic, calibration, tmp_path / "a.onnx")
    lines = [PROGRESS_LINE.match(line) for line in shown.stderr.splitlines()]
    counts = [(int(m[1]), int(m[2])) for m in lines if m]
    assert counts[0] == (0, 3) and counts[-1] == (3, 3), shown.stderr  # its start and end
    assert "ETA" in shown.stderr and "\r" not in shown.stderr  # lines, not a redrawn bar
    for quiet, before in (("--quiet", False), ("-q", True)):  # after or before the command
        silent = build(tiny_onnx_dynamic, calibration, tmp_path / "b.onnx", quiet, before=before)
        assert silent.stderr == "", (quiet, before, silent.stderr)
