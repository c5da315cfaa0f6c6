"""The GPU table of issue 14, in one run: the torch engine and the device pipeline per
precision and batch size, against torch eager fp32 measured in the same run, and the COCO
AP of each precision through the device pipeline.

    python benchmarks/bench_gpu.py                       # a CUDA machine, < 8 minutes
    python benchmarks/bench_gpu.py --device cpu --quick  # the same code path, in seconds

Needs only the project (its core install) and torch; torchvision when present gives the
nvJPEG decode (else JPEGs are decoded on the host, and the table says so). No network, no
pip: the speed model is an untrained full-size dlav0_34 (80 classes, 512x512) built here,
the JPEGs are synthetic images (300-1000 px, like `centernet synth`) and the bundled
photos, encoded in memory; AP uses the bundled default model at its own 768x768 on
held-out synthetic images (seed 1000, as `centernet synth --seed 1000`), scored with
pycocotools when installed, else with the small COCO box-AP below (same rules for
area=all, maxDets=100, no crowd).

Network-only figures are CUDA-event timings of the forward pass on a batch already on the
GPU; end to end is JPEG bytes in memory to boxes on the host through
``Detector(pipeline="device")`` (images/s, pipelined) and one batch at a time (latency).
Writes ``OUT/bench_gpu.json`` and ``OUT/bench_gpu.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch

from centernet.datasets import SynthConfig, load_annotations, render_sample, write_dataset
from centernet.demo import EVAL_SEED, bundled_photos, default_model_path
from centernet.engines import EngineConfig, open_engine
from centernet.errors import MissingDependencyError
from centernet.measure import (
    DeviceBenchRow,
    bench_torch_model,
    describe_machine,
    evaluate_detector,
    time_forward,
)
from centernet.models import create_model, save_checkpoint, settle_batchnorm
from centernet.runtime import Detector

TARGETS = {  # issue 14, H100/H200-class GPU, dlav0_34 at 512
    "network fp16 batch 8 img/s": 2500.0,
    "e2e fp16 batch 32 img/s": 2000.0,
    "e2e / network at batch 32": 0.90,
    "AP fp16 - AP fp32, absolute": 0.002,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument("--out", default="runs/bench_gpu", help="folder for the JSON and Markdown")
    p.add_argument("--batches", default=None, help="default 1,4,8,32 (quick: 1,2)")
    p.add_argument("--precisions", default=None, help="default fp32,tf32,fp16,bf16 on cuda")
    p.add_argument("--iterations", type=int, default=None, help="timed passes per batch")
    p.add_argument("--jpegs", type=int, default=None, help="JPEGs in memory for end to end")
    p.add_argument("--ap-images", type=int, default=None, help="held-out synthetic images")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time torch.compile reduce-overhead (fp16, batch 8); default: on cuda",
    )
    p.add_argument("--budget-s", type=float, default=450.0, help="skip optional work after")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    args.batches = [
        int(b) for b in (args.batches or ("1,2" if args.quick else "1,4,8,32")).split(",")
    ]
    default_precisions = "fp32,tf32,fp16,bf16" if cuda else "fp32,bf16"
    args.precisions = (
        args.precisions or ("fp32,fp16" if args.quick and cuda else default_precisions)
    ).split(",")
    args.iterations = args.iterations or (3 if args.quick else 50)
    args.warmup = 1 if args.quick else 5
    args.jpegs = args.jpegs or (8 if args.quick else 256)
    args.ap_images = args.ap_images or (4 if args.quick else 100)
    args.compile = cuda and not args.quick if args.compile is None else args.compile
    return args


def speed_checkpoint(work: Path, quick: bool) -> tuple[Path, tuple[int, int]]:
    """An untrained dlav0_34 with measured BatchNorm statistics (sane activations in fp16)."""
    size, width = ((128, 128), 0.25) if quick else ((512, 512), 1.0)
    torch.manual_seed(0)
    network = settle_batchnorm(create_model("dlav0_34", 80, width=width), size)
    path = work / "dlav0_34_untrained.pth"
    save_checkpoint(path, network, epoch=0, arch="dlav0_34", arch_args={"width": width},
                    input_size=size)  # fmt: skip
    return path, size


def jpeg_bytes(count: int) -> list[bytes]:
    """Synthetic images of 300-1000 px (JPEG q90) and the bundled photos, in memory."""
    photos = [p.read_bytes() for p in bundled_photos()]
    synthetic = []
    for index in range(max(0, count - len(photos))):
        sample = render_sample(seed=7, index=index, config=SynthConfig())
        ok, data = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        synthetic.append(data.tobytes())
    return (photos + synthetic)[:count]


def release(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def measure_speed(args, checkpoint: Path, encoded: list[bytes], log) -> dict:
    base = EngineConfig(device=args.device)
    eager_options = EngineConfig(device=args.device, precision="fp32", channels_last=False,
                                  capture="eager")  # fmt: skip
    eager = open_engine(checkpoint, "torch", eager_options)
    baseline = {}
    for batch in args.batches:
        baseline[batch] = time_forward(eager, batch, args.iterations, args.warmup)
        log(f"eager fp32 batch {batch}: {baseline[batch].images_per_s:.1f} img/s")
    del eager
    release(args.device)
    table: dict[str, list[DeviceBenchRow]] = {}
    for precision in args.precisions:
        options = EngineConfig(**{**asdict(base), "precision": precision})
        engine = open_engine(checkpoint, "torch", options)

        def heard(row: DeviceBenchRow, precision=precision) -> None:
            log(
                f"{precision} batch {row.batch}: network {row.network.images_per_s:.1f} img/s, "
                f"end to end {row.end_to_end_images_per_s:.1f} img/s"
            )

        table[precision] = bench_torch_model(
            engine, args.batches, args.iterations, args.warmup, encoded, on_row=heard
        )
        settings = engine.settings
        del engine
        release(args.device)
    compiled = None
    if args.compile and time.perf_counter() - args.started < args.budget_s - 180:
        try:
            options = EngineConfig(device=args.device, precision="fp16", capture="compile")
            engine = open_engine(checkpoint, "torch", options)
            compiled = time_forward(engine, 8, args.iterations, 10)
            log(f"torch.compile reduce-overhead fp16 batch 8: {compiled.images_per_s:.1f} img/s")
            del engine
        except Exception as exc:  # record why, keep the rest of the table
            compiled = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        release(args.device)
    return {"baseline": baseline, "table": table, "compiled": compiled, "settings": settings}


def measure_ap(args, work: Path, log) -> dict:
    """AP of the bundled model per precision through the device pipeline, and the host
    pipeline in fp32 for reference."""
    ann = write_dataset(work / "synth", args.ap_images, seed=EVAL_SEED)
    annotations = load_annotations(ann)
    size = {"input_size": (256, 256)} if args.quick else {}  # quick: a smaller input
    runs = [("host", "fp32")] + [("device", p) for p in args.precisions]
    results, evaluator = {}, "pycocotools"
    for pipeline, precision in runs:
        options = EngineConfig(device=args.device, precision=precision, **size)
        detector = Detector(default_model_path(), batch_size=8, options=options, pipeline=pipeline)
        try:
            ap = evaluate_detector(detector, annotations, work / "synth" / "images").stats["AP"]
        except MissingDependencyError:
            evaluator = "built-in COCO box AP (pycocotools not installed)"
            ap = builtin_box_ap(detector, annotations, work / "synth" / "images")
        results[f"{pipeline} {precision}"] = ap
        log(f"AP {pipeline} {precision}: {ap:.4f}")
        del detector
        release(args.device)
    return {"images": args.ap_images, "seed": EVAL_SEED, "evaluator": evaluator, "AP": results}


def builtin_box_ap(detector: Detector, annotations, image_dir: Path) -> float:
    """COCO AP@[.5:.95] for area=all, maxDets=100, no crowd, as pycocotools computes it."""
    from centernet.datasets import category_ids_for, detections_to_coco

    category_ids = category_ids_for(detector.spec.class_names, annotations)
    paths = [str(image_dir / im.file_name) for im in annotations.images]
    results = []
    for image, result in zip(annotations.images, detector.stream(paths)):
        if result.ok:
            results += detections_to_coco(result.detections, category_ids, image_id=image.id)
    ground_truth = json.loads(Path(annotations.path).read_text())["annotations"]
    return coco_box_ap(ground_truth, results)


def coco_box_ap(gts: list[dict], dts: list[dict]) -> float:
    """pycocotools' COCOeval bbox AP (iouThrs .50:.05:.95, 101 recall points, maxDets 100)
    for ground truth without crowd regions."""
    thresholds = np.linspace(0.5, 0.95, 10)
    recall_points = np.linspace(0.0, 1.0, 101)
    per_category = {}
    for category in sorted({g["category_id"] for g in gts} | {d["category_id"] for d in dts}):
        scores, matched, positives = [], [], 0
        images = {g["image_id"] for g in gts if g["category_id"] == category}
        images |= {d["image_id"] for d in dts if d["category_id"] == category}
        for image in images:
            mine = [
                x["bbox"] for x in gts if (x["image_id"], x["category_id"]) == (image, category)
            ]
            g = np.array(mine, dtype=np.float64).reshape(-1, 4)
            ds = [x for x in dts if x["image_id"] == image and x["category_id"] == category]
            ds = sorted(ds, key=lambda x: -x["score"])[:100]  # stable, as mergesort
            d = np.array([x["bbox"] for x in ds], dtype=np.float64).reshape(-1, 4)
            positives += len(g)
            ious = _iou(d, g)
            taken = np.zeros((len(thresholds), len(g)), bool)
            hits = np.zeros((len(thresholds), len(d)), bool)
            for t, threshold in enumerate(thresholds):
                for i in range(len(d)):
                    best, best_iou = -1, min(threshold, 1 - 1e-10)
                    for j in range(len(g)):
                        if taken[t, j] or ious[i, j] < best_iou:
                            continue
                        best, best_iou = j, ious[i, j]
                    if best >= 0:
                        taken[t, best], hits[t, i] = True, True
            scores += [x["score"] for x in ds]
            matched.append(hits)
        if positives == 0:
            continue
        order = np.argsort(-np.asarray(scores), kind="mergesort")
        hits = np.concatenate(matched, axis=1)[:, order] if matched else np.zeros((10, 0), bool)
        precision = np.zeros((len(thresholds), len(recall_points)))
        for t in range(len(thresholds)):
            tp = np.cumsum(hits[t]).astype(float)
            fp = np.cumsum(~hits[t]).astype(float)
            recall = tp / positives
            prec = tp / np.maximum(tp + fp, np.spacing(1))
            for i in range(len(prec) - 1, 0, -1):
                prec[i - 1] = max(prec[i - 1], prec[i])
            index = np.searchsorted(recall, recall_points, side="left")
            valid = index < len(prec)
            precision[t, valid] = prec[index[valid]]
        per_category[category] = precision.mean()
    return float(np.mean(list(per_category.values()))) if per_category else 0.0


def _iou(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes, (len(d), len(g)), as pycocotools' maskUtils.iou (no crowd)."""
    if not len(d) or not len(g):
        return np.zeros((len(d), len(g)))
    x1 = np.maximum(d[:, None, 0], g[None, :, 0])
    y1 = np.maximum(d[:, None, 1], g[None, :, 1])
    x2 = np.minimum(d[:, None, 0] + d[:, None, 2], g[None, :, 0] + g[None, :, 2])
    y2 = np.minimum(d[:, None, 1] + d[:, None, 3], g[None, :, 1] + g[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = (d[:, 2] * d[:, 3])[:, None] + (g[:, 2] * g[:, 3])[None, :] - inter
    return inter / union


def machine_line(device: str, nvjpeg: bool) -> str:
    parts = [f"torch {torch.__version__}"]
    try:
        import torchvision

        parts.append(f"torchvision {torchvision.__version__}")
    except Exception:
        parts.append("no torchvision")
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
        parts.insert(0, gpu)
    parts.append("JPEG decode on the GPU (nvJPEG)" if nvjpeg else "JPEG decode on the host")
    return "; ".join(parts) + f"; CPU: {describe_machine()}"


def markdown(data: dict) -> str:
    lines = [f"# GPU table ({data['machine']})", "", f"Command: `{data['command']}`", ""]
    lines += [
        f"Network: {data['network']}; end to end: {data['jpegs']} JPEGs in memory to boxes "
        "on the host through the device pipeline. Network img/s from the median of "
        f"{data['iterations']} passes timed {data['timed']}; eager fp32 = the original network "
        "as PyTorch runs it by default (contiguous, no graphs, TF32 off), same run.",
        "",
        "| precision | batch | network img/s | p50 ms | p99 ms | vs eager fp32 | "
        "end-to-end img/s | e2e batch p50 ms | e2e batch p99 ms | e2e / network |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for precision, rows in data["table"].items():
        for r in rows:
            eager = data["eager_fp32"][str(r["batch"])]["images_per_s"]
            net = r["network"]
            rate, e2e, batch = (
                net["images_per_s"],
                r["end_to_end_images_per_s"],
                r["end_to_end_batch"],
            )
            lines.append(
                f"| {precision} | {r['batch']} | {rate:.0f} | {net['p50_ms']:.2f} | "
                f"{net['p99_ms']:.2f} | {rate / eager:.2f}x | {e2e:.0f} | "
                f"{batch['p50_ms']:.2f} | {batch['p99_ms']:.2f} | {e2e / rate:.0%} |"
            )
    lines += ["", "| eager fp32 batch | img/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    for batch, t in data["eager_fp32"].items():
        lines.append(
            f"| {batch} | {t['images_per_s']:.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} |"
        )
    if data["compiled"] is not None:
        c = data["compiled"]
        text = (
            c if isinstance(c, str) else f"{c['images_per_s']:.0f} img/s (p50 {c['p50_ms']:.2f} ms)"
        )
        lines += ["", f'torch.compile(mode="reduce-overhead"), fp16, batch 8: {text}']
    ap = data["ap"]
    lines += [
        "",
        f"AP of the bundled model on {ap['images']} held-out synthetic images (seed "
        f"{ap['seed']}), {ap['evaluator']}:",
        "",
        "| run | AP | vs host fp32 |",
        "|---|---|---|",
    ]
    host = ap["AP"]["host fp32"]
    for run, value in ap["AP"].items():
        lines.append(f"| {run} | {value:.4f} | {value - host:+.4f} |")
    lines += ["", "| target (issue 14) | goal | measured |", "|---|---|---|"]
    for name, (goal, got) in data["targets"].items():
        shown = "n/a" if got is None else f"{got:.4g}"
        lines.append(f"| {name} | {goal:g} | {shown} |")
    lines.append(f"\nTotal {data['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def targets(speed: dict, ap: dict) -> dict:
    """Each target of the issue: (goal, measured or None where not measured)."""

    def row(precision, batch):
        rows = [r for r in speed["table"].get(precision, []) if r.batch == batch]
        return rows[0] if rows else None

    net8, e2e32 = row("fp16", 8), row("fp16", 32)
    fp16, fp32 = ap["AP"].get("device fp16"), ap["AP"].get("device fp32")
    measured = {
        "network fp16 batch 8 img/s": net8.network.images_per_s if net8 else None,
        "e2e fp16 batch 32 img/s": e2e32.end_to_end_images_per_s if e2e32 else None,
        "e2e / network at batch 32": (
            e2e32.end_to_end_images_per_s / e2e32.network.images_per_s if e2e32 else None
        ),
        "AP fp16 - AP fp32, absolute": abs(fp16 - fp32) if None not in (fp16, fp32) else None,
    }
    return {name: (goal, measured[name]) for name, goal in TARGETS.items()}


def timing_json(t) -> dict:
    return t.to_dict()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "bench_gpu: torch has no CUDA device here; run with --device cpu --quick",
            file=sys.stderr,
        )
        return 2

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - args.started:5.0f} s] {text}", file=sys.stderr, flush=True)

    from centernet.runtime.device import nvjpeg_decoder

    nvjpeg = nvjpeg_decoder(torch.device(args.device)) is not None
    machine = machine_line(args.device, nvjpeg)
    log(machine)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint, size = speed_checkpoint(work, args.quick)
        encoded = jpeg_bytes(args.jpegs)
        log(f"speed model ready ({size[0]}x{size[1]}); {len(encoded)} JPEGs in memory")
        speed = measure_speed(args, checkpoint, encoded, log)
        ap = measure_ap(args, work, log)
    compiled = speed["compiled"]
    data = {
        "machine": machine,
        "command": "python benchmarks/bench_gpu.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "network": f"dlav0_34{' (width 0.25)' if args.quick else ''}, 80 classes, untrained, "
        f"{size[0]}x{size[1]}, channels_last={speed['settings'].channels_last}, "
        f"capture={speed['settings'].capture}",
        "jpegs": len(encoded),
        "timed": "with CUDA events" if args.device == "cuda" else "synchronously (CPU)",
        "iterations": args.iterations,
        "eager_fp32": {str(b): timing_json(t) for b, t in speed["baseline"].items()},
        "table": {
            precision: [r.to_dict() for r in rows] for precision, rows in speed["table"].items()
        },  # fmt: skip
        "compiled": timing_json(compiled)
        if compiled is not None and not isinstance(compiled, str)
        else compiled,
        "ap": ap,
        "targets": targets(speed, ap),
        "seconds": time.perf_counter() - args.started,
    }
    (out / "bench_gpu.json").write_text(json.dumps(data, indent=2))
    (out / "bench_gpu.md").write_text(markdown(data))
    print(markdown(data))
    log(f"wrote {out / 'bench_gpu.json'} and {out / 'bench_gpu.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
