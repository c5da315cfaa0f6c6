"""End to end against network-only, per engine, precision and batch; start-up per engine.

    python benchmarks/bench_share.py --photos ../shared/data/photos --work runs/bench/share \
        [--images 60] [--rounds 2] [--iterations 10]

Builds an untrained full-size dlav0_34 (80 classes, 512x512, dynamic batch) at fp32 and
int8 (calibrated on the test JPEGs), and writes ``--images`` JPEGs of 360-900 px made from
the photos. Then, as whole processes, the way a user runs them:

- network-only: ``centernet bench MODEL --engine E --batch B`` (random input);
- ``centernet detect`` steady state: the wall time of a run on N images minus a run on 1
  image, so start-up (imports, model load, compile) cancels: (N - 1) / (T_N - T_1);
- start-up: ``centernet detect`` on one image, with a cold and a warm compiled-model cache.

Rounds alternate the configurations; medians are printed, with the per-stage profile
(``detect --profile``) of the last round. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from centernet.measure import describe_machine

ENGINES = ("onnxruntime", "openvino")
BUILDS = ("fp32", "int8")


def make_jpegs(photos: Path, out: Path, count: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(photos.glob("*.jpg"))
    rng = random.Random(0)
    paths = []
    for i in range(count):
        image = cv2.imread(str(sources[i % len(sources)]))
        scale = rng.randint(360, 900) / max(image.shape[:2])
        size = (int(image.shape[1] * scale), int(image.shape[0] * scale))
        path = out / f"img_{i:03d}.jpg"
        cv2.imwrite(str(path), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        paths.append(path)
    return paths


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of ``centernet ARGS`` as a fresh process, and its stdout."""
    started = time.perf_counter()
    done = subprocess.run(
        ["centernet", *args], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"centernet {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--batch", default="1,4")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CENTERNET_CACHE_DIR": str(work / "cache")}
    jpegs = make_jpegs(Path(args.photos), work / "jpegs", args.images)
    models = {b: work / f"{b}.onnx" for b in BUILDS}
    if not models["fp32"].exists():
        run(
            [
                "export",
                "--random-init",
                "--num-classes",
                "80",
                "-o",
                str(models["fp32"]),
                "--dynamic-batch",
            ],
            env,
        )
    if not models["int8"].exists():
        run(
            [
                "build",
                str(models["fp32"]),
                "-o",
                str(models["int8"]),
                "--precision",
                "int8",
                "--calib-images",
                str(work / "jpegs"),
                "--calib-count",
                "32",
            ],
            env,
        )
    batches = [int(b) for b in args.batch.split(",")]
    one = str(jpegs[0])

    startup: dict[str, list[float]] = {}
    for engine in ENGINES:
        with tempfile.TemporaryDirectory() as cold_cache:
            cold_env = {**env, "CENTERNET_CACHE_DIR": cold_cache}
            out = ["--out", str(work / "out1"), "--engine", engine]
            startup[f"{engine} cold"] = [
                run(["detect", str(models["int8"]), one, *out], cold_env)[0]
            ]
            startup[f"{engine} warm"] = [
                run(["detect", str(models["int8"]), one, *out], cold_env)[0] for _ in range(3)
            ]

    configs = [(e, b, n) for e in ENGINES for b in BUILDS for n in batches]
    network: dict[tuple, list[float]] = {c: [] for c in configs}
    steady: dict[tuple, list[float]] = {c: [] for c in configs}
    profiles: dict[tuple, str] = {}
    for config in configs:  # warm every cache first
        engine, build, batch = config
        run(
            [
                "detect",
                str(models[build]),
                one,
                "--out",
                str(work / "o"),
                "--engine",
                engine,
                "--batch",
                str(batch),
            ],
            env,
        )
    for round_ in range(args.rounds):
        for config in configs:
            engine, build, batch = config
            model = str(models[build])
            _, text = run(
                [
                    "bench",
                    model,
                    "--engine",
                    engine,
                    "--batch",
                    str(batch),
                    "--iterations",
                    str(args.iterations),
                    "--json",
                    str(work / "bench.json"),
                ],
                env,
            )
            rows = json.loads((work / "bench.json").read_text())["rows"]
            network[config].append(rows[0]["network"]["images_per_s"])
            common = ["--out", str(work / "o"), "--engine", engine, "--batch", str(batch)]
            t1, _ = run(["detect", model, one, *common], env)
            tn, text = run(["detect", model, str(work / "jpegs"), *common, "--profile"], env)
            steady[config].append((len(jpegs) - 1) / (tn - t1))
            profiles[config] = text[text.index("profile:") :].split("\nnote:")[0]
            print(
                f"round {round_ + 1} {config}: network {network[config][-1]:.2f}, "
                f"detect {steady[config][-1]:.2f} img/s",
                file=sys.stderr,
            )

    print(f"Machine: {describe_machine()}\n")
    print(
        "| engine | build | batch | `bench` network-only img/s | `detect` steady img/s "
        "| detect / network |"
    )
    print("|---|---|---|---|---|---|")
    summary = {}
    for config in configs:
        net, det = statistics.median(network[config]), statistics.median(steady[config])
        summary["/".join(map(str, config))] = {"network": network[config], "detect": steady[config]}
        engine, build, batch = config
        print(f"| {engine} | {build} | {batch} | {net:.2f} | {det:.2f} | {det / net:.0%} |")
    print("\n| engine | start-up: `detect` on 1 image, s | runs |\n|---|---|---|")
    for key, values in startup.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {key} cache | {statistics.median(values):.2f} | {shown} |")
    for config in configs:
        if config[1] == "int8":
            print(
                f"\nProfile, {' '.join(map(str, config))}: "
                + re.sub(r"^profile: ", "", profiles[config])
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"share": summary, "startup": startup}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
