"""What the Ray test modules share: inputs with bad files among them, the local run to
compare with, a simulated cluster on loopback, and a wall-clock limit for every job (a
hang fails the test instead of stalling the suite)."""

from __future__ import annotations

import contextlib
import io
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from centernet.cli import main

LOOPBACK = "127.0.0.1"


def copy_inputs(photo_paths: list[Path], folder: Path, copies: int, bad: bool = True) -> Path:
    """``copies`` copies of the photos in ``folder`` (named ``<copy>_<name>``), with an
    unreadable file and a text file among them when ``bad``."""
    for copy in range(copies):
        for path in photo_paths:
            shutil.copy(path, folder / f"{copy}_{path.name}")
    if bad:
        (folder / "1_broken.jpg").write_bytes(photo_paths[0].read_bytes()[:3000])
        (folder / "1_text.jpg").write_text("not a picture")
    return folder


def detect(model: Path, inputs: list[str], out: Path, *extra: str) -> tuple[int, str, str]:
    """``centernet detect`` in this process: (exit code, stdout, stderr)."""
    err, printed = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(printed):
        code = main(
            ["detect", str(model), *inputs, "--out", str(out), "--threshold", "0.1", *extra]
        )
    return code, printed.getvalue(), err.getvalue()


def outputs(out: Path) -> tuple[bytes, bytes]:
    """The two result files of a detect run."""
    return (out / "detections.json").read_bytes(), (out / "detections.jsonl").read_bytes()


def skipped(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("centernet: skipped")]


def within(seconds: float, job: Callable[[], Any]) -> Any:
    """``job()``'s value, or a failed test when it has not returned within ``seconds`` (the
    job's thread is left behind as a daemon: the suite goes on)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = job()
        except BaseException as exc:  # re-raised in the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"the job did not end within {seconds:g} s (a hang)")
    if "error" in box:
        raise box["error"]
    return box["value"]


class LoopbackCluster:
    """``ray.cluster_utils.Cluster`` on 127.0.0.1: a head with no CPUs (it runs no actor)
    and ``nodes`` nodes of 1 CPU each, as separate raylets."""

    def __init__(self, nodes: int = 2) -> None:
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": LOOPBACK}
        )
        self.nodes = [self.add_node() for _ in range(nodes)]
        self.cluster.wait_for_nodes()

    def add_node(self):
        return self.cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)

    @property
    def address(self) -> str:
        """As a user types it: ``127.0.0.1:PORT``."""
        return f"{LOOPBACK}:{self.cluster.address.rsplit(':', 1)[1]}"

    def remove(self, node) -> None:
        self.cluster.remove_node(node, allow_graceful=False)
        self.nodes.remove(node)

    def kill_head(self) -> None:
        """SIGKILL to the head's processes, without waiting for them (``remove_node``
        waits for each, seconds in which a small job can finish)."""
        self.cluster.head_node.kill_all_processes(
            check_alive=False, allow_graceful=False, wait=False
        )

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()


def actor_pids(name: str = "ShardDetector") -> list[int]:
    """The processes of Ray actors of class ``name`` on this machine (Ray titles them
    ``ray::Class.method``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(f"ray::{name}"):
            pids.append(int(proc.name))
    return pids


def when_shards(out: Path, count: int, action: Callable[[], None], limit_s: float = 60) -> None:
    """In a thread: ``action()`` once ``count`` shards of the run into ``out`` exist."""

    def wait() -> None:
        until = time.monotonic() + limit_s
        folder = out / "shards"
        while time.monotonic() < until:
            if folder.is_dir() and len(list(folder.glob("*.jsonl"))) >= count:
                action()
                return
            time.sleep(0.02)

    threading.Thread(target=wait, daemon=True).start()
