"""Network-only throughput at batch 1 of every architecture, as ratios to PyTorch eager fp32.

    python benchmarks/bench_architectures.py --work DIR [--archs res_18,dla_34,...]
        [--input-size 512] [--iterations 5] [--calib-images DIR] [--engines onnxruntime]

For each architecture: an untrained full-size network with BatchNorm statistics settled on
noise (weights do not change the arithmetic), exported at batch 1 (opset 19 with ONNX
DeformConv for the DCN models), an int8 build calibrated on ``--calib-images`` (DeformConv
stays float), then PyTorch eager fp32, ONNX Runtime fp32 and int8 (and OpenVINO where it can
run the graph) timed in the same run, the torch baseline before and after the engines.
Prints a markdown table; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
from pathlib import Path

import torch

from centernet.classes import class_names_for
from centernet.engines import EngineConfig, TorchEngine, open_engine, options_for
from centernet.errors import CenterNetError
from centernet.export import ExportConfig, export_onnx
from centernet.measure import Timing, time_network
from centernet.models import ARCHS, create_model, settle_batchnorm
from centernet.quantize import BuildConfig, CalibrationConfig, build
from centernet.types import ModelSpec

CLASSES = 80


def bench_arch(arch: str, args: argparse.Namespace, work: Path) -> dict:
    size = (args.input_size, args.input_size)
    torch.manual_seed(0)
    network = settle_batchnorm(create_model(arch, CLASSES), (args.settle_size, args.settle_size))
    params = sum(p.numel() for p in network.parameters())
    spec = ModelSpec(arch, CLASSES, class_names_for(CLASSES), input_size=size)
    folder = work / arch
    fp32 = folder / "fp32.onnx"
    exported = export_onnx(network, fp32, spec, ExportConfig(verify=False))
    paths = {"fp32": fp32}
    notes = []
    if args.calib_images:
        int8 = folder / "int8.onnx"
        calibration = CalibrationConfig(args.calib_images, args.calib_count, "minmax")
        built = build(fp32, int8, BuildConfig("int8", calibration))
        paths["int8"] = int8
        notes.append(f"int8: {built.nodes_quantized}/{built.nodes_total} convs")
    options = EngineConfig(threads=args.threads, cache_dir=str(folder / "ov_cache"))
    baseline = TorchEngine(network, spec)
    timings: dict[str, Timing] = {"torch": time_network(baseline, 1, args.iterations, 1)}
    for engine_name in args.engines.split(","):
        for precision, path in paths.items():
            key = f"{engine_name} {precision}"
            try:
                engine = open_engine(path, engine_name, options_for(engine_name, options))
                timings[key] = time_network(engine, 1, args.iterations, 1)
            except CenterNetError as exc:
                notes.append(f"{key}: {exc}")
            finally:
                engine = None
                gc.collect()
    timings["torch again"] = time_network(baseline, 1, args.iterations, 1)
    base = (timings["torch"].p50_ms + timings["torch again"].p50_ms) / 2
    return {
        "params_m": params / 1e6,
        "opset": exported.opset,
        "torch_ms": base,
        "ms": {k: t.p50_ms for k, t in timings.items()},
        "ratio": {k: base / t.p50_ms for k, t in timings.items() if not k.startswith("torch")},
        "notes": notes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the exported models")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--input-size", type=int, default=512)
    parser.add_argument("--settle-size", type=int, default=256, help="BatchNorm settling input")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engines", default="onnxruntime,openvino")
    parser.add_argument("--calib-images", default=None, help="images for the int8 builds")
    parser.add_argument("--calib-count", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    results = {}
    for arch in args.archs.split(","):
        results[arch] = bench_arch(arch, args, work)
        print(f"{arch}: {json.dumps(results[arch])}", file=sys.stderr, flush=True)
        gc.collect()
    columns = [f"{e} {p}" for e in args.engines.split(",") for p in ("fp32", "int8")]
    columns = [c for c in columns if any(c in r["ms"] for r in results.values())]
    machine = f"{platform.processor() or platform.machine()}, {args.threads} threads"
    print(f"\nbatch 1, {args.input_size}x{args.input_size}, {machine}\n")
    print("| arch | params (M) | torch eager fp32 ms | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for arch, r in results.items():
        cells = [
            f"{r['ms'][c]:.0f} ms ({r['ratio'][c]:.2f}x)" if c in r["ms"] else "n/a"
            for c in columns
        ]
        print(f"| {arch} | {r['params_m']:.1f} | {r['torch_ms']:.0f} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
