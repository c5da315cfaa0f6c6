"""End-to-end images/s of the pipelined Detector against network-only and the original path.

    python benchmarks/bench_pipeline.py --photos ../shared/data/photos --work runs/bench_pipe \
        [--checkpoint CKPT | --random-full-size 5] [--batch 1,4] [--images 32]
        [--engines onnxruntime,openvino] [--skip-topk]

1. Export the model (maps mode and in-graph top-K mode) and build int8 (calibrated on the
   photos through the real pre-processing).
2. For each batch size: network-only images/s of the int8 build (random input), and
   end-to-end images/s from the JPEG files to Detections through ``Detector.stream``.
3. The original per-image path, one image at a time: cv2.imread, the original
   pre-processing (float64 normalisation), PyTorch eager fp32 forward, ctdet_decode with
   torch top-K, ctdet_post_process with a per-point affine loop.
4. Maps versus in-graph top-K, end to end at batch 1, on each engine.
All measured in the same run; prints markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from centernet.classes import class_names_for
from centernet.engines import EngineConfig, open_engine, options_for
from centernet.export import ExportConfig, export_onnx
from centernet.measure import time_end_to_end, time_network
from centernet.models import create_model, load_checkpoint, settle_batchnorm
from centernet.quantize import BuildConfig, CalibrationConfig, build
from centernet.runtime import Detector, get_affine_transform
from centernet.types import COCO_MEAN, COCO_STD, ModelSpec

sys.path.insert(0, str(Path(__file__).parent))
from bench_prepost import original_style_decode  # noqa: E402


def original_path(network: torch.nn.Module, paths: list[str], size: int) -> float:
    """Images/s of the original research code's per-image test path."""
    mean = np.array(COCO_MEAN, np.float32).reshape(1, 1, 3)
    std = np.array(COCO_STD, np.float32).reshape(1, 1, 3)
    from centernet.runtime import PreprocessConfig, make_letterbox

    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = cv2.imread(path)
            height, width = image.shape[:2]
            center = np.array([width / 2.0, height / 2.0], np.float32)
            trans = get_affine_transform(center, max(height, width) * 1.0, (size, size))
            warped = cv2.warpAffine(image, trans, (size, size), flags=cv2.INTER_LINEAR)
            x = ((warped / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)[None]
            out = network(torch.from_numpy(x))
            hm = torch.sigmoid(out["hm"])
            outputs = {"hm": hm.numpy(), "wh": out["wh"].numpy(), "reg": out["reg"].numpy()}
            box = make_letterbox(width, height, PreprocessConfig(input_size=(size, size)))
            original_style_decode(outputs, box)
    return len(paths) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--random-full-size", type=int, default=0, metavar="CLASSES")
    parser.add_argument("--batch", default="1,4")
    parser.add_argument("--images", type=int, default=32, help="files per end-to-end run")
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--original-images", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engines", default="onnxruntime", help="engines of the main table")
    parser.add_argument("--skip-topk", action="store_true", help="no maps vs top-K table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.random_full_size:
        torch.manual_seed(0)
        network = settle_batchnorm(create_model("dlav0_34", args.random_full_size), (512, 512))
        names, arch_args, label = class_names_for(args.random_full_size), {}, "dlav0_34 (full size)"
    else:
        loaded = load_checkpoint(args.checkpoint)
        network, names, arch_args = loaded.model, loaded.class_names, loaded.arch_args
        label = Path(args.checkpoint).name
    spec = ModelSpec(
        "dlav0_34", len(names), names, extra={"arch_args": arch_args} if arch_args else {}
    )
    maps = work / "fp32.onnx"
    topk = work / "fp32_topk.onnx"
    export_onnx(network, maps, spec, ExportConfig(dynamic_batch=True))
    if not args.skip_topk:
        export_onnx(network, topk, spec, ExportConfig(dynamic_batch=True, output_mode="topk"))
    calibration = CalibrationConfig(args.photos, count=8)
    int8 = work / "int8.onnx"
    int8_topk = work / "int8_topk.onnx"
    build(maps, int8, BuildConfig("int8", calibration))
    if not args.skip_topk:
        build(topk, int8_topk, BuildConfig("int8", calibration))
    photos = sorted(str(p) for p in Path(args.photos).glob("*.jpg"))
    files = (photos * (args.images // len(photos) + 1))[: args.images]
    options = EngineConfig(threads=args.threads, cache_dir=str(work / "ov_cache"))

    print(f"\n{label}, int8, {args.threads} threads, {len(files)} photos per run\n")
    print(
        "| engine | batch | network-only img/s | end-to-end img/s | e2e / network "
        "| original path img/s | e2e / original |"
    )
    print("|---|---|---|---|---|---|---|")
    for engine_name in args.engines.split(","):
        engine = open_engine(int8, engine_name, options_for(engine_name, options))
        for batch in [int(b) for b in args.batch.split(",")]:
            network_only = time_network(engine, batch, args.iterations).images_per_s
            e2e = time_end_to_end(Detector(engine, batch_size=batch), files, warmup=batch)
            original = original_path(network.eval(), files[: args.original_images], 512)
            print(
                f"| {engine_name} | {batch} | {network_only:.2f} | {e2e:.2f} "
                f"| {e2e / network_only:.0%} | {original:.2f} | {e2e / original:.1f}x |",
                flush=True,
            )
    if args.skip_topk:
        return 0

    print("\n| engine | model | maps mode e2e img/s | top-K mode e2e img/s | faster |")
    print("|---|---|---|---|---|")
    for engine_name in ("onnxruntime", "openvino"):
        for name, a, b in (("fp32", maps, topk), ("int8", int8, int8_topk)):
            speeds = []
            for path in (a, b):
                engine = open_engine(path, engine_name, options_for(engine_name, options))
                detector = Detector(engine, batch_size=1)
                speeds.append(time_end_to_end(detector, files, warmup=2))
            faster = "top-K" if speeds[1] > speeds[0] else "maps"
            print(
                f"| {engine_name} | {name} | {speeds[0]:.2f} | {speeds[1]:.2f} | {faster} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
