"""COCO AP per precision and network-only throughput per precision and engine.

    python benchmarks/bench_precisions.py --checkpoint CKPT --calib-images DIR \
        --val DIR [--limit N] [--input-size 512] --work DIR [--iterations 20]

Exports the checkpoint (dynamic batch), builds fp16 / int8 / int8-mixed with calibration
on ``--calib-images``, scores every build with ONNX Runtime on ``--val``
(``images/`` + ``instances.json``; skip with ``--no-eval``), then times every build on
each engine at batch 1 against PyTorch eager fp32 of the same checkpoint, measured in the
same run. Prints markdown tables; ``--json`` writes the numbers.
``--random-full-size N`` replaces the checkpoint by an untrained full-size dlav0_34 with
N classes (throughput only: its AP means nothing).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from centernet.datasets import load_annotations
from centernet.engines import EngineConfig, TorchEngine, open_engine, options_for
from centernet.export import ExportConfig, export_onnx
from centernet.measure import evaluate_detector, time_network
from centernet.models import create_model, load_checkpoint, save_checkpoint, settle_batchnorm
from centernet.quantize import BuildConfig, CalibrationConfig, build
from centernet.runtime import Detector

PRECISIONS = ("fp32", "fp16", "int8", "int8-mixed")


def prepare_checkpoint(args: argparse.Namespace, work: Path) -> Path:
    if not args.random_full_size:
        return Path(args.checkpoint)
    torch.manual_seed(0)
    size = (args.input_size, args.input_size)
    network = settle_batchnorm(create_model("dlav0_34", args.random_full_size), size)
    path = work / "random_full_size.pth"
    save_checkpoint(path, network, 0, "dlav0_34")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--random-full-size", type=int, default=0, metavar="CLASSES")
    parser.add_argument("--calib-images", required=True)
    parser.add_argument("--calib-count", type=int, default=100)
    parser.add_argument("--calib-method", default="minmax")
    parser.add_argument("--val", default=None, help="folder with images/ and instances.json")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--input-size", type=int, default=512)
    parser.add_argument("--work", required=True, help="folder for the exported and built models")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engines", default="onnxruntime,openvino")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    checkpoint = prepare_checkpoint(args, work)
    loaded = load_checkpoint(checkpoint)
    spec = loaded.model_spec((args.input_size, args.input_size))
    fp32 = work / "fp32.onnx"
    export_onnx(loaded.model, fp32, spec, ExportConfig(dynamic_batch=True))
    paths = {"fp32": fp32}
    calibration = CalibrationConfig(args.calib_images, args.calib_count, args.calib_method)
    kept = {}
    for precision in PRECISIONS[1:]:
        paths[precision] = work / f"{precision}.onnx"
        result = build(fp32, paths[precision], BuildConfig(precision, calibration))
        kept[precision] = [k.node for k in result.kept]
        print(
            f"built {precision}: {result.nodes_quantized}/{result.nodes_total} convs int8, "
            f"{len(result.kept)} float, {result.seconds:.0f} s",
            file=sys.stderr,
        )

    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads",
        "kept_float": kept,
    }
    options = EngineConfig(threads=args.threads, cache_dir=str(work / "ov_cache"))
    if not args.no_eval:
        annotations = load_annotations(Path(args.val) / "instances.json")
        accuracy = {}
        for precision, path in paths.items():
            detector = Detector(
                path, engine="onnxruntime", batch_size=1,
                options=options_for("onnxruntime", options),
            )
            outcome = evaluate_detector(
                detector, annotations, Path(args.val) / "images", args.limit
            )
            accuracy[precision] = {k: outcome.stats[k] for k in ("AP", "AP50", "AP75", "AP_small")}
            print(f"AP {precision}: {outcome.stats['AP']:.4f}", file=sys.stderr)
        report["accuracy"] = accuracy
        print(
            "\n| precision | AP | AP50 | AP75 | AP_small | AP - fp32 |\n|---|---|---|---|---|---|"
        )
        for precision, stats in accuracy.items():
            delta = stats["AP"] - accuracy["fp32"]["AP"]
            print(
                f"| {precision} | {stats['AP']:.4f} | {stats['AP50']:.4f} | {stats['AP75']:.4f} "
                f"| {stats['AP_small']:.4f} | {delta:+.4f} |"
            )

    baseline = TorchEngine(loaded.model, spec)
    timings = {"torch eager fp32": time_network(baseline, 1, args.iterations)}
    for engine_name in args.engines.split(","):
        for precision, path in paths.items():
            engine = open_engine(path, engine_name, options_for(engine_name, options))
            timings[f"{engine_name} {precision}"] = time_network(engine, 1, args.iterations)
    timings["torch eager fp32 (again)"] = time_network(baseline, 1, args.iterations)
    base = (timings["torch eager fp32"].p50_ms + timings["torch eager fp32 (again)"].p50_ms) / 2
    report["throughput_batch1"] = {
        k: {
            "p50_ms": t.p50_ms,
            "p90_ms": t.p90_ms,
            "images_per_s": t.images_per_s,
            "ratio": base / t.p50_ms,
        }
        for k, t in timings.items()
    }
    print("\n| engine, precision (batch 1) | p50 ms | p90 ms | images/s | vs torch eager fp32 |")
    print("|---|---|---|---|---|")
    for name, t in timings.items():
        print(
            f"| {name} | {t.p50_ms:.1f} | {t.p90_ms:.1f} | {t.images_per_s:.2f} "
            f"| {base / t.p50_ms:.2f}x |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
