"""When the node the command runs on dies (here the head: the GCS goes with it), Ray cannot
go on: detect --ray exits non-zero at once with a message that says what is done and how
to go on, and the same command with --resume detects only the images whose shard is not
complete. Its own cluster (the head is killed); the command runs as a child process (Ray
ends a driver whose node is gone)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.distributed.helpers import LoopbackCluster, copy_inputs, detect, outputs

pytest.importorskip("ray", reason="the ray extra is not installed")


def test_the_driver_node_lost_is_an_error_and_resume_goes_on(
    tiny_onnx_dynamic, photo_paths, tmp_path
):
    (tmp_path / "images").mkdir()
    images = copy_inputs(photo_paths, tmp_path / "images", copies=50, bad=False)
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "centernet.cli", "detect", str(tiny_onnx_dynamic),
               str(images), "--out", str(out), "--threshold", "0.1", "--ray",
               "--ray-batch", "4", "--ray-lost-after-s", "2"]  # fmt: skip
    cluster = LoopbackCluster(nodes=1)
    try:
        child = subprocess.Popen(
            [*command, "--ray-address", cluster.address],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        until = time.monotonic() + 120
        while len(list((out / "shards").glob("*.jsonl"))) < 3 and time.monotonic() < until:
            assert child.poll() is None, child.communicate()
            time.sleep(0.02)
        cluster.kill_head()
        killed = time.monotonic()
        try:
            _, err = child.communicate(timeout=60)
        finally:
            child.kill()
        assert time.monotonic() - killed < 40
    finally:
        cluster.shutdown()
    assert child.returncode == 2, err
    assert "lost the Ray node this command runs on" in err
    assert "the same command with --resume goes on from there" in err
    done = len(list((out / "shards").glob("*.jsonl")))
    total = len(list(images.iterdir()))
    assert 3 <= done < total // 4 and not list((out / "shards").glob("*.tmp"))
    # Ray on this machine this time (the cluster is gone): only the rest is detected
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done * 4} done before (--resume)" in resumed.stdout
    assert f"detected {total - done * 4} of {total - done * 4} images" in resumed.stdout
    local = tmp_path / "local"
    detect(tiny_onnx_dynamic, [str(images)], local)
    assert outputs(out) == outputs(local)
