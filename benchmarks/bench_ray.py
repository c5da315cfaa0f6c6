"""Ray's overhead on this machine: `centernet detect` locally against `detect --ray`.

    python benchmarks/bench_ray.py --model runs/share/int8.onnx --images runs/share/jpegs \
        [--count 240] [--rounds 2]

Each configuration runs as a whole process, the way a user runs it, on ``--count`` images
(the JPEGs repeated) and on 8 images; the steady-state rate is (N - 8) / (T_N - T_8), so
start-up (imports, model load, for Ray also starting Ray and its actors) cancels, and the
whole-process rate N / T_N is shown beside it. Rounds alternate local and Ray. Both write
detections.json; the script checks they are byte-identical.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from centernet.measure import describe_machine


def run(model: str, images: Path, out: Path, ray: bool) -> float:
    command = ["centernet", "detect", model, str(images), "--out", str(out)]
    if ray:
        command += ["--ray", "--ray-batch", "16"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sources = sorted(Path(args.images).glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        sets = {}
        for n in (8, args.count):
            folder = Path(tmp) / f"set{n}"
            folder.mkdir()
            for i in range(n):
                shutil.copy(sources[i % len(sources)], folder / f"{i:05d}.jpg")
            sets[n] = folder
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for mode in ("local", "ray"):
                for n, folder in sets.items():
                    out = Path(tmp) / f"{mode}{n}"
                    seconds = run(args.model, folder, out, mode == "ray")
                    times.setdefault((mode, n), []).append(seconds)
                    print(f"{mode} {n} images: {seconds:.1f} s", flush=True)
        big = args.count
        same = (Path(tmp) / f"local{big}" / "detections.json").read_bytes() == (
            Path(tmp) / f"ray{big}" / "detections.json"
        ).read_bytes()
    print(f"\nmachine: {describe_machine()}; model {args.model}; {big} images; "
          f"detections.json identical: {same}\n")  # fmt: skip
    print("| run | T(8) s | T(N) s | whole process images/s | steady state images/s |")
    print("|---|---:|---:|---:|---:|")
    rates = {}
    for mode in ("local", "ray"):
        small = statistics.median(times[(mode, 8)])
        large = statistics.median(times[(mode, big)])
        rates[mode] = (big - 8) / (large - small)
        print(f"| {mode} | {small:.1f} | {large:.1f} | {big / large:.2f} | {rates[mode]:.2f} |")
    print(f"\nRay steady state vs local: {rates['ray'] / rates['local']:.2f} "
          f"(overhead {1 - rates['ray'] / rates['local']:.0%})")  # fmt: skip


if __name__ == "__main__":
    main()
