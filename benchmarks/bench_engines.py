"""Which engine is fastest for each build on this CPU: the measurement behind ``--engine
auto`` (BENCHMARKS.md, "Engine choice").

    python benchmarks/bench_engines.py --work runs/bench/engines                # bundled model
    python benchmarks/bench_engines.py --checkpoint ../shared/models/dlav0_34_shapes6.pth \
        --calib ../shared/data/shapes6/images --work runs/bench/engines_full

Exports the checkpoint (dynamic batch), builds it at each of ``--builds`` (int8 builds
calibrated on ``--calib-count`` images of ``--calib``, synthetic ones by default), then
times every build on ONNX Runtime and on OpenVINO: network only (random input, median of
``--iterations`` runs) at each batch size, and end to end (``Detector.stream`` over
``--e2e-images`` files at the largest batch). Rounds alternate the engines, so both see the
same machine; the table gives medians over rounds and OpenVINO / ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from centernet.datasets import write_dataset
from centernet.demo import CALIB_SEED, EVAL_SEED, default_model_path
from centernet.engines import EngineConfig, open_engine
from centernet.measure import describe_machine, time_end_to_end, time_network
from centernet.quantize import BuildConfig, CalibrationConfig, build
from centernet.runtime import Detector, collect_image_paths

ENGINES = ("onnxruntime", "openvino")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: the bundled model")
    p.add_argument("--calib", default=None, help="calibration images (default: synthetic)")
    p.add_argument("--calib-count", type=int, default=32)
    p.add_argument("--images", default=None, help="end-to-end images (default: synthetic)")
    p.add_argument("--builds", default="fp32,fp16,int8", help="precisions to compare")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--e2e-images", type=int, default=24)
    p.add_argument("--work", default="runs/bench/engines")
    return p.parse_args(argv)


def make_builds(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    from centernet.export import ExportConfig, export_onnx
    from centernet.models import load_checkpoint

    checkpoint = Path(args.checkpoint) if args.checkpoint else default_model_path()
    fp32 = work / "fp32.onnx"
    if not fp32.is_file():
        loaded = load_checkpoint(checkpoint)
        export_onnx(loaded.model, fp32, loaded.model_spec(), ExportConfig(dynamic_batch=True))
    calib = args.calib
    if calib is None:
        write_dataset(work / "calib", args.calib_count, seed=CALIB_SEED)
        calib = str(work / "calib" / "images")
    built = {}
    for precision in args.builds.split(","):
        path = fp32 if precision == "fp32" else work / f"{precision}.onnx"
        if not path.is_file():
            int8 = "int8" in precision
            calibration = CalibrationConfig(calib, args.calib_count) if int8 else None
            build(fp32, path, BuildConfig(precision, calibration))
        built[precision] = path
    return built


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    builds = make_builds(args, work)
    if args.images is None:
        write_dataset(work / "e2e", args.e2e_images, seed=EVAL_SEED)
        args.images = str(work / "e2e" / "images")
    paths = [str(p) for p in collect_image_paths([args.images]).paths][: args.e2e_images]
    batches = [int(b) for b in args.batches.split(",")]
    engines = {
        (precision, name): open_engine(path, name, EngineConfig())
        for precision, path in builds.items()
        for name in ENGINES
    }
    network: dict[tuple, list[float]] = {}
    e2e: dict[tuple, list[float]] = {}
    for round_ in range(args.rounds):
        order = ENGINES if round_ % 2 == 0 else ENGINES[::-1]
        for precision in builds:
            for name in order:
                engine = engines[precision, name]
                for batch in batches:
                    timing = time_network(engine, batch, args.iterations, warmup=2)
                    network.setdefault((precision, name, batch), []).append(timing.images_per_s)
                detector = Detector(engine, batch_size=max(batches))
                rate = time_end_to_end(detector, paths, warmup=max(batches))
                e2e.setdefault((precision, name), []).append(rate)
        print(f"[{time.perf_counter() - started:5.0f} s] round {round_ + 1} done", file=sys.stderr)
    machine = describe_machine()
    lines = [
        f"Machine: {machine}. Model: {Path(args.checkpoint or default_model_path()).name}; "
        f"{args.rounds} rounds, engines alternating; medians over rounds.",
        "",
        "| build | batch | onnxruntime img/s | openvino img/s | openvino / onnxruntime |",
        "|---|---|---|---|---|",
    ]
    results = {"machine": machine, "network": {}, "end_to_end": {}}
    for precision in builds:
        for batch in [*batches, "e2e"]:
            if batch == "e2e":
                ort, ov = (statistics.median(e2e[precision, n]) for n in ENGINES)
                label = f"end to end, b{max(batches)}"
                results["end_to_end"][precision] = {"onnxruntime": ort, "openvino": ov}
            else:
                ort, ov = (statistics.median(network[precision, n, batch]) for n in ENGINES)
                label = f"network b{batch}"
                results["network"][f"{precision} b{batch}"] = {"onnxruntime": ort, "openvino": ov}
            lines.append(f"| {precision} | {label} | {ort:.2f} | {ov:.2f} | {ov / ort:.2f}x |")
    text = "\n".join(lines)
    print(text)
    (work / "bench_engines.json").write_text(json.dumps(results, indent=2))
    (work / "bench_engines.md").write_text(text + "\n")
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
