"""detect --ray on a simulated cluster: a 0-CPU head and two 1-CPU nodes on loopback, one
cluster for the module. The work spreads over both nodes and matches the local run; the
planner never asks for an actor larger than a node and says at once what does not fit;
an actor process killed or a node removed mid-job loses and doubles nothing. Every job
runs under a wall-clock limit."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.distributed.helpers import (
    LoopbackCluster,
    actor_pids,
    copy_inputs,
    detect,
    outputs,
    skipped,
    when_shards,
    within,
)

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

LIMIT_S = 120  # per job: a few seconds each here, a hang fails


@pytest.fixture(scope="module")
def cluster():
    started = LoopbackCluster(nodes=2)
    yield started
    started.shutdown()


@pytest.fixture(scope="module")
def inputs(photo_paths, tmp_path_factory):
    """The photos, twice, with bad files among them and a missing one at the end."""
    folder = copy_inputs(photo_paths, tmp_path_factory.mktemp("images"), copies=2)
    return [str(folder), str(folder / "gone.jpg")]


@pytest.fixture(scope="module")
def many(photo_paths, tmp_path_factory):
    """200 images: long enough for a node to be lost in the middle."""
    return [str(copy_inputs(photo_paths, tmp_path_factory.mktemp("many"), 50, bad=False))]


def local_run(model, inputs, tmp_path_factory) -> tuple[int, bytes, bytes, list[str]]:
    out = tmp_path_factory.mktemp("local")
    code, _, err = detect(model, inputs, out)
    return code, *outputs(out), skipped(err)


@pytest.fixture(scope="module")
def local(tiny_onnx_dynamic, inputs, tmp_path_factory):
    return local_run(tiny_onnx_dynamic, inputs, tmp_path_factory)


@pytest.fixture(scope="module")
def local_many(tiny_onnx_dynamic, many, tmp_path_factory):
    return local_run(tiny_onnx_dynamic, many, tmp_path_factory)


def on_cluster(
    model, inputs, out, cluster, *extra
) -> tuple[int, bytes, bytes, list[str], str, str]:
    code, printed, err = within(
        LIMIT_S,
        lambda: detect(model, inputs, out, "--ray", "--ray-address", cluster.address, *extra),
    )
    if code == 2:
        return code, b"", b"", [], printed, err
    return code, *outputs(out), skipped(err), printed, err


def test_two_nodes_share_the_work_and_give_the_local_files(
    tiny_onnx_dynamic, inputs, local, cluster, tmp_path
):
    # joined by its loopback address, as typed: Ray's rewrite to the interface address
    # would find nothing there
    code, *files, printed, _ = on_cluster(
        tiny_onnx_dynamic, inputs, tmp_path / "ray", cluster, "--ray-workers", "2",
        "--ray-batch", "2",
    )  # fmt: skip
    assert (code, *files) == local
    assert "Ray: 2 actors x 1 threads on 2 node(s)" in printed
    per_node = printed.split("images per node ")[1].split(",")
    assert len(per_node) == 3 and sum(int(n.split(": ")[1]) for n in per_node[:2]) == 11
    # the actors import the code under test (the environment travels to the nodes)
    import centernet

    where = ray.get(ray.remote(num_cpus=1)(lambda: __import__("centernet").__file__).remote())
    assert where == centernet.__file__


def test_one_worker_on_1_cpu_nodes_is_one_1_thread_actor(
    tiny_onnx_dynamic, inputs, local, cluster, tmp_path
):
    """The plan used to divide the cluster's 2 CPUs: one 2-CPU actor, placed nowhere."""
    started = time.monotonic()
    code, *files, printed, _ = on_cluster(
        tiny_onnx_dynamic, inputs, tmp_path / "ray", cluster, "--ray-workers", "1"
    )
    assert (code, *files) == local
    assert "Ray: 1 actors x 1 threads on 1 node(s)" in printed
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--threads", "2"), "an actor with --threads 2 needs 2 CPUs on one node, and the "
                              "largest node has 1"),
        (("--ray-workers", "3"), "--ray-workers 3 actors with 1 engine thread(s) each do "
                                  "not fit: the nodes hold 2"),
    ],
)  # fmt: skip
def test_an_actor_no_node_can_hold_is_an_error_at_once(
    tiny_onnx_dynamic, inputs, cluster, tmp_path, flags, says
):
    started = time.monotonic()
    code, *_, err = on_cluster(tiny_onnx_dynamic, inputs, tmp_path / "ray", cluster, *flags)
    assert code == 2 and says in err, err
    assert time.monotonic() - started < 15


def test_an_actor_whose_cpus_are_taken_fails_after_the_placement_timeout(
    tiny_onnx_dynamic, photo_paths, cluster, tmp_path
):
    from centernet.distributed.ray import DetectJob, PlacementError, RayConfig, detect_on_ray

    @ray.remote(num_cpus=1)
    class Squatter:
        def where(self) -> str:
            return ray.get_runtime_context().get_node_id()

    squatter = Squatter.remote()
    ray.get(squatter.where.remote())  # one node's CPU is taken from here on
    try:
        job = DetectJob(str(tiny_onnx_dynamic), out=str(tmp_path))
        settings = RayConfig(address=cluster.address, workers=2, placement_timeout_s=1)
        sources = [str(p) for p in photo_paths] * 50  # the placed actor is still busy
        started = time.monotonic()
        with pytest.raises(PlacementError, match="not placed on node .* within 1 s: other work"):
            within(LIMIT_S, lambda: detect_on_ray(sources, job, settings))
        assert time.monotonic() - started < 30
    finally:
        ray.kill(squatter)


def test_an_actor_process_killed_mid_job_is_restarted_and_nothing_is_lost(
    tiny_onnx_dynamic, many, local_many, cluster, tmp_path
):
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_one_actor() -> None:
        pids = actor_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)  # as os._exit inside it: no goodbye
            killed.append(pids[0])

    when_shards(out, 3, kill_one_actor)
    code, *files, printed, err = on_cluster(
        tiny_onnx_dynamic, many, out, cluster, "--ray-batch", "4"
    )
    assert killed, "no actor process was found to kill"
    assert (code, *files) == local_many
    assert "was lost" in err and "started again" in err and "are redone" in err, err
    assert "0 node(s) lost, 1 actor(s) restarted" in printed
    assert not list((out / "shards").glob("*.tmp"))


def test_a_node_lost_mid_job_loses_and_doubles_nothing(
    tiny_onnx_dynamic, many, local_many, cluster, tmp_path
):
    out = tmp_path / "ray"
    victim = cluster.nodes[-1]
    when_shards(out, 3, lambda: cluster.remove(victim))
    try:
        code, *files, printed, err = on_cluster(
            tiny_onnx_dynamic, many, out, cluster, "--ray-batch", "4"
        )
        assert (code, *files) == local_many  # every image once, in input order
        lost = [line for line in err.splitlines() if " lost: its actor is gone" in line]
        assert len(lost) == 1 and "are redone" in lost[0], err
        assert "1 node(s) lost" in printed
        # every shard is whole: 50 of 4 images, each line a record
        shards = sorted((out / "shards").glob("*.jsonl"))
        assert len(shards) == 50 and not list((out / "shards").glob("*.tmp"))
        assert all(len(p.read_text().splitlines()) == 4 for p in shards)
    finally:
        if victim not in cluster.nodes and len(cluster.nodes) < 2:
            cluster.nodes.append(cluster.add_node())  # the next test gets two nodes again


def test_a_resumed_run_skips_the_complete_shards(
    tiny_onnx_dynamic, inputs, local, cluster, tmp_path
):
    """A stopped run's complete shards are kept; one shard gone is all that runs again
    (and the unreadable images, tried again as the local --resume does)."""
    out = tmp_path / "ray"
    assert on_cluster(tiny_onnx_dynamic, inputs, out, cluster, "--ray-batch", "2")[0] == 1
    shards = sorted((out / "shards").glob("*.jsonl"))
    shards[0].unlink()  # a shard the stopped run never wrote
    (out / "detections.json").unlink()
    code, *files, printed, _ = on_cluster(
        tiny_onnx_dynamic, inputs, out, cluster, "--ray-batch", "2", "--resume"
    )
    assert (code, *files) == local
    # shard 0 (2 images) and the 3 unreadable inputs ran again; 6 of 11 were done
    assert "detected 2 of 5 images" in printed and "6 done before (--resume)" in printed, printed


def test_the_shards_say_where_they_were_cut(tiny_onnx_dynamic, inputs, cluster, tmp_path):
    code, *_ = on_cluster(tiny_onnx_dynamic, inputs, tmp_path / "ray", cluster, "--ray-batch", "3")
    assert code == 1
    names = sorted(p.name for p in (tmp_path / "ray" / "shards").glob("*.jsonl"))
    assert names == [f"{i:010d}.jsonl" for i in (0, 3, 6, 9)]  # 11 inputs, 3 a shard
    assert Path(tmp_path / "ray" / "detections.jsonl").is_file()
