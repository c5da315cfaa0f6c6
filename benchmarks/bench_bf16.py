"""What bf16 buys and costs through OpenVINO: AP of the bundled model and full-size speed.

    python benchmarks/bench_bf16.py --val runs/synth_test --calib-images DIR --work DIR \
        [--limit 300] [--iterations 20] [--threads 2]

Accuracy: the bundled default model (or ``--checkpoint``) exported at its own input size,
scored on ``--val`` (``images/`` + ``instances.json``) with ONNX Runtime fp32, OpenVINO
fp32 (its default on every CPU since issue 11) and OpenVINO with ``precision="bf16"``.
Speed: an untrained full-size dlav0_34 (80 classes) at 512x512, fp32 and int8 builds,
network-only at batch 1 through OpenVINO in fp32 and in bf16, interleaved (f32, bf16,
f32, bf16) so that drift hits both alike. On a CPU without native bf16 only the fp32
rows are measured. Prints markdown tables; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from centernet.classes import class_names_for
from centernet.datasets import load_annotations
from centernet.demo import default_model_path
from centernet.engines import EngineConfig, cpu_has_native_bf16, open_engine, options_for
from centernet.export import ExportConfig, export_onnx
from centernet.measure import describe_machine, evaluate_detector, time_network
from centernet.models import create_model, load_checkpoint, settle_batchnorm
from centernet.quantize import BuildConfig, CalibrationConfig, build
from centernet.runtime import Detector
from centernet.types import ModelSpec


def accuracy(args: argparse.Namespace, work: Path, runs: list[tuple[str, str, str | None]]):
    loaded = load_checkpoint(args.checkpoint or default_model_path())
    spec = loaded.model_spec()
    size = spec.input_size
    model = work / "bundled_fp32.onnx"
    export_onnx(loaded.model, model, spec, ExportConfig(dynamic_batch=True))
    annotations = load_annotations(Path(args.val) / "instances.json")
    rows = {}
    for label, engine, precision in runs:
        options = EngineConfig(
            threads=args.threads, cache_dir=str(work / "ov_cache"), precision=precision
        )
        detector = Detector(
            model, engine=engine, batch_size=1, options=options_for(engine, options)
        )
        outcome = evaluate_detector(detector, annotations, Path(args.val) / "images", args.limit)
        rows[label] = {k: outcome.stats[k] for k in ("AP", "AP50", "AP_small")}
        print(f"AP {label}: {outcome.stats['AP']:.4f}", file=sys.stderr)
    return size, rows


def full_size_models(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    network = settle_batchnorm(create_model("dlav0_34", 80), (512, 512))
    spec = ModelSpec("dlav0_34", 80, class_names_for(80), input_size=(512, 512))
    fp32 = work / "full_fp32.onnx"
    export_onnx(network, fp32, spec, ExportConfig())
    int8 = work / "full_int8.onnx"
    build(fp32, int8, BuildConfig("int8", CalibrationConfig(args.calib_images, 32)))
    return {"fp32": fp32, "int8": int8}


def interleaved(engines: dict[str, object], rounds: int, iterations: int) -> dict[str, list]:
    """Median ms of each engine in each round, the engines taking turns within a round."""
    for engine in engines.values():
        time_network(engine, 1, 1, warmup=3)  # compile and warm
    medians: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(rounds):
        for key, engine in engines.items():
            medians[key].append(time_network(engine, 1, iterations, warmup=1).p50_ms)
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--val", required=True, help="folder with images/ and instances.json")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--calib-images", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    import openvino as ov

    bf16 = cpu_has_native_bf16(ov.Core())
    machine = describe_machine()
    print(f"machine: {machine}; OpenVINO native bf16: {bf16}", file=sys.stderr)
    runs = [("onnxruntime fp32", "onnxruntime", None), ("openvino fp32", "openvino", None)]
    if bf16:
        runs.append(("openvino bf16", "openvino", "bf16"))
    size, ap = accuracy(args, work, runs)

    models = full_size_models(args, work)
    engines = {}
    for build_name, path in models.items():
        for precision in ("fp32", "bf16") if bf16 else ("fp32",):
            options = EngineConfig(
                threads=args.threads, cache_dir=str(work / "ov_cache"), precision=precision
            )
            engines[f"{build_name} build, openvino {precision}"] = open_engine(
                path, "openvino", options
            )
    timings = interleaved(engines, args.rounds, args.iterations)

    print(f"\nMachine: {machine}\n")
    print(f"Bundled model at {size[0]}x{size[1]}, {args.limit or 'all'} images of {args.val}\n")
    print("| engine, run-time precision | AP | AP50 | AP_small | AP - ORT fp32 |")
    print("|---|---|---|---|---|")
    base_ap = ap["onnxruntime fp32"]["AP"]
    for label, stats in ap.items():
        print(
            f"| {label} | {stats['AP']:.4f} | {stats['AP50']:.4f} | {stats['AP_small']:.4f} "
            f"| {stats['AP'] - base_ap:+.4f} |"
        )
    print("\nFull-size dlav0_34 (80 classes, untrained) at 512x512, batch 1, network only\n")
    print(
        "| build, engine and run-time precision | ms (median of rounds) | rounds | images/s "
        "| vs fp32 build in fp32 |"
    )
    print("|---|---|---|---|---|")
    ms = {k: statistics.median(v) for k, v in timings.items()}
    base = ms["fp32 build, openvino fp32"]
    for label, rounds in timings.items():
        shown = ", ".join(f"{r:.0f}" for r in rounds)
        print(
            f"| {label} | {ms[label]:.1f} | {shown} | {1000 / ms[label]:.2f} "
            f"| {base / ms[label]:.2f}x |"
        )
    if args.json:
        data = {
            "machine": machine,
            "native_bf16": bf16,
            "accuracy": ap,
            "timings_ms_per_round": timings,
        }
        Path(args.json).write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
