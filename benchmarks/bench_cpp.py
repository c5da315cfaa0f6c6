"""C++ `centernet_infer` against the Python `centernet detect`, end to end, on the same files
and model in the same run.

    python benchmarks/bench_cpp.py [--models runs/share/int8.onnx,runs/share/fp32.onnx]
        [--images runs/share/jpegs] [--count 60] [--batch 1,4] [--fp32-batch 1]
        [--binary build/cpp/centernet_infer] [--markdown runs/bench/cpp.md]

Every run is a fresh process on the same ``--count`` JPEGs, as a user runs it:

- C++: ``centernet_infer`` (OpenVINO C++ runtime);
- Python: ``centernet detect --engine openvino`` (the same runtime) and ``centernet detect``
  with its default engine (ONNX Runtime).

Each program prints its own throughput over the detection loop (first read to last result,
start-up excluded); the table gives it with the process's wall time (start-up included) and
the C++ per-image latency (p50, from starting to read an image to its boxes). One warm-up
run on one image per configuration fills the compiled-model caches first. The C++ and
Python-on-OpenVINO detections.json are checked to be identical.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from centernet.measure import describe_machine

REPO = Path(__file__).resolve().parents[1]
THRESHOLD = "0.1"  # the shared models have random weights: a few boxes per image at 0.1
PROGRAMS = ("C++ centernet_infer", "Python detect --engine openvino", "Python detect (onnxruntime)")


@dataclass
class Timing:
    images_per_s: float
    wall_s: float
    boxes: int
    latency_p50_ms: float | None
    detections: str  # the detections.json text


def command(program: str, binary: Path, model: Path, images: list[str], out: Path, batch: int):
    common = [str(model), *images, "--out", str(out), "--threshold", THRESHOLD]
    common += ["--batch", str(batch)]
    if program.startswith("C++"):
        return [str(binary), *common]
    python = [sys.executable, "-m", "centernet.cli", "detect", *common]
    return python + (["--engine", "openvino"] if "openvino" in program else [])


def timed(argv: list[str], out: Path, env: dict[str, str]) -> Timing:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed:\n{done.stderr[-2000:]}")
    # images over the loop's seconds (printed to 0.1 s): the printed img/s has one decimal
    summary = re.search(r"detected (\d+) of \d+ images in ([\d.]+) s .*: (\d+) boxes", done.stdout)
    if summary is None:
        raise SystemExit(f"no summary line in:\n{done.stdout}")
    latency = re.search(r"latency per image p50 ([\d.]+) ms", done.stdout)
    return Timing(
        int(summary.group(1)) / max(float(summary.group(2)), 0.05),
        wall,
        int(summary.group(3)),
        float(latency.group(1)) if latency else None,
        (out / "detections.json").read_text(),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="runs/share/int8.onnx,runs/share/fp32.onnx")
    parser.add_argument("--images", default="runs/share/jpegs")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--batch", default="1,4", help="batch sizes of every model but fp32")
    parser.add_argument("--fp32-batch", default="1", help="batch sizes of fp32 (the slow one)")
    parser.add_argument("--binary", default=str(REPO / "build" / "cpp" / "centernet_infer"))
    parser.add_argument("--work", default="runs/bench/cpp")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    args = parser.parse_args()

    binary = Path(args.binary)
    if not binary.is_file():
        raise SystemExit(
            f"{binary} not found; build it: cmake -S cpp -B build/cpp && make -C build/cpp"
        )
    images = sorted(str(p) for p in Path(args.images).glob("*.jpg"))[: args.count]
    if len(images) < args.count:
        raise SystemExit(f"{args.images} holds {len(images)} JPEGs, fewer than {args.count}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CENTERNET_CACHE_DIR": str(work / "cache")}
    started = time.perf_counter()

    rows = []
    for model in (Path(m) for m in args.models.split(",")):
        batches = args.fp32_batch if "fp32" in model.name else args.batch
        for batch in (int(b) for b in batches.split(",")):
            results = {}
            for program in PROGRAMS:
                out = work / "out"
                warm = command(program, binary, model, images[:1], out, batch)
                timed(warm, out, env)  # compiles the model into the cache
                timing = timed(command(program, binary, model, images, out, batch), out, env)
                results[program] = timing
                print(
                    f"{model.name} batch {batch} {program}: {timing.images_per_s} img/s",
                    file=sys.stderr,
                )
            rows.append((model, batch, results))

    lines = [
        "## C++ `centernet_infer` against Python `centernet detect` (issue 17)",
        "",
        f"Machine: {describe_machine()}; {len(images)} JPEGs of {args.images}, threshold "
        f"{THRESHOLD}; each run a fresh process after a warm-up that fills the compiled-model "
        "cache.",
        "",
        "| model | batch | program | images/s (detect loop) | wall s (with start-up) "
        "| p50 latency per image, ms | boxes | vs C++ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, batch, results in rows:
        ours = results[PROGRAMS[0]]
        for program, timing in results.items():
            if program == PROGRAMS[0]:
                relation = "-"
            else:
                same = "identical detections.json" if timing.detections == ours.detections else ""
                speed = f"C++ {ours.images_per_s / timing.images_per_s:.2f}x"
                relation = ", ".join(filter(None, [speed, same]))
            latency = f"{timing.latency_p50_ms:.0f}" if timing.latency_p50_ms is not None else "-"
            lines.append(
                f"| {model.name} | {batch} | {program} | {timing.images_per_s:.2f} "
                f"| {timing.wall_s:.1f} | {latency} | {timing.boxes} | {relation} |"
            )
    invoked = " ".join(["python benchmarks/bench_cpp.py", *map(shlex.quote, sys.argv[1:])])
    lines += ["", f"Command: `{invoked}` (took {time.perf_counter() - started:.0f} s)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
