"""COCO AP of each precision build of a checkpoint, with int8-mixed at several sizes.

    python benchmarks/bench_int8_mixed.py --checkpoint CKPT --calib-images DIR \
        --val DIR [--limit 300] --work DIR [--mixed 6,12]

Exports the checkpoint (dynamic batch), builds fp16, int8 and int8-mixed keeping at most
N measured-sensitive convolutions float besides the heads (one build per N in
``--mixed``), and scores every build with ONNX Runtime on ``--val`` (``images/`` +
``instances.json``). Prints a markdown table of AP and its difference to fp32.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from centernet.datasets import load_annotations
from centernet.engines import EngineConfig
from centernet.export import ExportConfig, export_onnx
from centernet.measure import evaluate_detector
from centernet.models import load_checkpoint
from centernet.quantize import BuildConfig, CalibrationConfig, SearchConfig, build
from centernet.runtime import Detector


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--calib-images", required=True)
    parser.add_argument("--calib-count", type=int, default=32)
    parser.add_argument("--val", required=True, help="folder with images/ and instances.json")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--work", required=True)
    parser.add_argument("--mixed", default="6,12", help="int8-mixed sizes to build")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    loaded = load_checkpoint(args.checkpoint)
    spec = loaded.model_spec()
    fp32 = work / "fp32.onnx"
    export_onnx(loaded.model, fp32, spec, ExportConfig(dynamic_batch=True))
    calibration = CalibrationConfig(args.calib_images, args.calib_count, "minmax")
    configs = {"fp16": BuildConfig("fp16"), "int8": BuildConfig("int8", calibration)}
    for n in (int(v) for v in args.mixed.split(",")):
        configs[f"int8-mixed (heads + up to {n} convs float)"] = BuildConfig(
            "int8-mixed", calibration, search=SearchConfig(max_layers=n)
        )
    paths = {"fp32": fp32}
    for i, (name, config) in enumerate(configs.items()):
        paths[name] = work / f"build{i}.onnx"
        result = build(fp32, paths[name], config)
        kept = ", ".join(k.node for k in result.kept if "head" not in k.reason)
        print(f"{name}: {len(result.kept)} kept float ({kept})", file=sys.stderr, flush=True)
    annotations = load_annotations(Path(args.val) / "instances.json")
    stats = {}
    for name, path in paths.items():
        detector = Detector(
            path, engine="onnxruntime", batch_size=4, options=EngineConfig(threads=args.threads)
        )
        outcome = evaluate_detector(detector, annotations, Path(args.val) / "images", args.limit)
        stats[name] = {k: outcome.stats[k] for k in ("AP", "AP50", "AP_small")}
        print(f"{name}: AP {stats[name]['AP']:.4f}", file=sys.stderr, flush=True)
    base = stats["fp32"]["AP"]
    print("| build | AP | AP50 | AP_small | AP - fp32 |\n|---|---|---|---|---|")
    for name, s in stats.items():
        print(
            f"| {name} | {s['AP']:.4f} | {s['AP50']:.4f} | {s['AP_small']:.4f} "
            f"| {s['AP'] - base:+.4f} |"
        )
    (work / "ap_per_build.json").write_text(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
