"""detect --ray across two nodes: 2 actors against 1, against the local run and against two
plain processes pinned one per core.

    python benchmarks/bench_ray_scale.py --model runs/scale/dlav0_34_shapes6.fp32.onnx \
        --images /work/shared/data/shapes6/images [--count 96] [--rounds 3] \
        [--ray-address HOST:PORT]

The cluster: without ``--ray-address``, a simulated one on loopback (``ray.cluster_utils.
Cluster``): a head with 0 CPUs and two nodes of 1 CPU each, every node its own raylet
pinned to a core of its own; the same command joins it as a user would
(``--ray-address 127.0.0.1:PORT``). The images:
the last ``--count`` of the folder (sorted), held out from any calibration. Each
configuration runs as a whole process, the way a user runs it, on the 8 first and on all
``--count`` images:

- ``local``: ``centernet detect`` without Ray, its own thread count (all cores);
- ``pinned 1``: one plain process, ``--threads 1``, pinned to core 0 (``taskset``);
- ``pinned 2``: two plain processes at once, ``--threads 1``, each on half of the images,
  pinned one per core: the ceiling Ray is judged against;
- ``ray 1`` / ``ray 2``: ``detect --ray --ray-address ADDR --ray-workers 1|2 --threads 1``.

Whole process: N / T(N). Steady state: (N - 8) / (T(N) - T(8)), so start-up (imports,
joining Ray, starting actors, model load) cancels; Ray's own model-load seconds are in
its summary line and shown apart. Median of ``--rounds``; configurations alternate within
a round so drift hits all. Every detections.json is checked against the local run's, and
the Ray runs' images per node show that the two actors ran on two nodes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from centernet.measure import describe_machine

CLI = [sys.executable, "-m", "centernet.cli"]


def start_cluster():
    """A 0-CPU head and two 1-CPU nodes on loopback, without the dashboard (its processes
    poll; a real cluster's dashboard costs the same on every configuration). Each node's
    processes (its raylet, and so its actors) are pinned to a core of their own, as on a
    1-CPU machine: unpinned, one actor would have a second core for decoding for free."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    everywhere = os.sched_getaffinity(0)
    for core in sorted(everywhere)[:2]:
        os.sched_setaffinity(0, {core})  # the node's processes inherit it
        try:
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        finally:
            os.sched_setaffinity(0, everywhere)
    cluster.wait_for_nodes()
    return cluster, f"127.0.0.1:{cluster.address.rsplit(':', 1)[1]}"


def timed(commands: list[list[str]]) -> tuple[float, list[str]]:
    """Run ``commands`` at once; seconds until the last ends, and their stdout."""
    started = time.perf_counter()
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for c in commands]  # fmt: skip
    outputs = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:  # every image is readable: 1 (some were not) is a failure
            raise SystemExit(f"{' '.join(process.args)} failed:\n{err[-2000:]}")
        outputs.append(out)
    return time.perf_counter() - started, outputs


def commands(mode: str, model: str, folders: dict[str, Path], out: Path, address: str):
    def detect(folder: Path, *options: str) -> list[str]:
        return [*CLI, "detect", model, str(folder), "--threshold", "0.3", *options]

    if mode == "local":
        return [detect(folders["all"], "--out", str(out))]
    if mode == "pinned 1":
        return [["taskset", "-c", "0", *detect(folders["all"], "--out", str(out), "--threads",
                                               "1")]]  # fmt: skip
    if mode == "pinned 2":
        return [
            ["taskset", "-c", str(core), *detect(folders[half], "--out", str(out / half),
                                                 "--threads", "1")]
            for core, half in enumerate(("a", "b"))
        ]  # fmt: skip
    workers = mode.split()[1]
    return [detect(folders["all"], "--out", str(out), "--ray", "--ray-address", address,
                   "--ray-workers", workers, "--threads", "1")]  # fmt: skip


def image_sets(images: Path, count: int, root: Path) -> dict[int, dict[str, Path]]:
    """For 8 and ``count`` images: the folder of all, and its two halves (links)."""
    sources = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    chosen = sources[-count:]
    sets = {}
    for n in (8, count):
        folders = {name: root / f"{name}{n}" for name in ("all", "a", "b")}
        for folder in folders.values():
            folder.mkdir()
        for i, source in enumerate(chosen[:n]):
            (folders["all"] / source.name).symlink_to(source.resolve())
            (folders["a" if i < n // 2 else "b"] / source.name).symlink_to(source.resolve())
        sets[n] = folders
    return sets


MODES = ("local", "pinned 1", "pinned 2", "ray 1", "ray 2")


def measure(args, address: str, root: Path):
    sets = image_sets(Path(args.images), args.count, root)
    timed([[*CLI, "detect", args.model, str(sets[8]["all"]), "--out", str(root / "warm")]])
    times: dict[tuple[str, int], list[float]] = {}
    notes: dict[str, str] = {}
    for round_ in range(args.rounds):
        for mode in MODES:
            for n, folders in sets.items():
                out = root / f"{mode.replace(' ', '')}-{n}"
                shutil.rmtree(out, ignore_errors=True)
                seconds, printed = timed(commands(mode, args.model, folders, out, address))
                times.setdefault((mode, n), []).append(seconds)
                if mode.startswith("ray") and n == args.count:
                    notes[mode] = ray_note(printed[0])
                print(f"round {round_ + 1} {mode:8} {n:4} images: {seconds:6.1f} s", flush=True)
    same = all(
        (root / f"{m.replace(' ', '')}-{args.count}" / "detections.json").read_bytes()
        == (root / f"local-{args.count}" / "detections.json").read_bytes()
        for m in ("ray 1", "ray 2")
    )
    return times, notes, same


def ray_note(printed: str) -> str:
    """'nodes a1b2c3d4: 48, e5f6a7b8: 48; model load 1.2 s' from a --ray summary."""
    per_node = re.search(r"images per node ([^,]*(?:, [0-9a-f]{8}: \d+)*)", printed)
    load = re.search(r"model load ([\d.]+) s", printed)
    nodes = per_node.group(1) if per_node else "?"
    return f"nodes {nodes}; model load {load.group(1) if load else '?'} s"


def report(args, times, notes, same) -> None:
    n = args.count
    print(f"\nmachine: {describe_machine()}; model {args.model}; {n} images "
          f"(the last of {args.images}); median of {args.rounds}; load average before/after: "
          f"{args.load_before} / {os.getloadavg()[0]:.2f}; detections.json identical to "
          f"local: {same}\n")  # fmt: skip
    print("| run | T(8) s | T(N) s | whole process img/s | steady state img/s | Ray |")
    print("|---|---:|---:|---:|---:|---|")
    whole, steady = {}, {}
    for mode in MODES:
        small = statistics.median(times[(mode, 8)])
        large = statistics.median(times[(mode, n)])
        whole[mode], steady[mode] = n / large, (n - 8) / (large - small)
        print(f"| {mode} | {small:.1f} | {large:.1f} | {whole[mode]:.2f} | {steady[mode]:.2f} "
              f"| {notes.get(mode, '')} |")  # fmt: skip
    print(
        f"\nray 2 / ray 1: steady {steady['ray 2'] / steady['ray 1']:.2f}x, whole process "
        f"{whole['ray 2'] / whole['ray 1']:.2f}x (goal 1.6x; pinned 2 / pinned 1, the "
        f"ceiling: steady {steady['pinned 2'] / steady['pinned 1']:.2f}x)\n"
        f"ray 2 / local, whole process: {whole['ray 2'] / whole['local']:.0%} (goal 85%); "
        f"steady {steady['ray 2'] / steady['local']:.0%}\n"
        f"ray 2 / pinned 2 (the ceiling): whole {whole['ray 2'] / whole['pinned 2']:.0%}, "
        f"steady {steady['ray 2'] / steady['pinned 2']:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the full-size model (.onnx, fp32)")
    parser.add_argument("--images", required=True, help="a folder; its last --count are used")
    parser.add_argument("--count", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ray-address", default=None, help="a real cluster (default: simulate)")
    args = parser.parse_args()
    args.model = str(Path(args.model).resolve())  # the commands run elsewhere
    if args.count < 16 or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        raise SystemExit("needs --count >= 16, taskset and two cores")
    args.load_before = f"{os.getloadavg()[0]:.2f}"
    cluster, address = (None, args.ray_address) if args.ray_address else start_cluster()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            times, notes, same = measure(args, address, Path(tmp))
    finally:
        if cluster is not None:
            cluster.shutdown()
    report(args, times, notes, same)


if __name__ == "__main__":
    main()
