"""The prepared GPU check (issue 33), one run, one JSON + Markdown that BENCHMARKS.md quotes:

1. the GPU table (``bench_gpu.py``): network img/s at batch 1/8/32 per precision against
   torch eager fp32 in the same run, end to end from JPEG bytes in memory through the
   device pipeline, the bundled model's AP per precision;
2. the full-size model (``--checkpoint``, with ``--images``/``--ann``; ``gpu_pack.py``
   packs them): the device pipeline's fp32 boxes against the host pipeline's on the CPU
   (the same boxes within ``BOX_PX`` pixels and ``SCORE_ABS`` in score, the tolerance of
   the CUDA tests: nvJPEG's decode is not OpenCV's to the last bit), and its AP per
   precision (fp16 within 0.002 of fp32 is the target);
3. where the time goes: torch.profiler over the device pipeline end to end at
   ``--profile-batch``, the top operators by device time (CPU time on the CPU).

    python benchmarks/gpu_check.py --checkpoint gpu_carry/full_size_fp16.pth \\
        --images gpu_carry/images_set/images --ann gpu_carry/images_set/instances.json
    python benchmarks/gpu_check.py --device cpu --quick ...   # the same code path, on the CPU

Writes OUT/gpu_check.json and OUT/gpu_check.md (and bench_gpu.json/.md beside them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import bench_gpu
import numpy as np
import torch

from centernet.datasets import load_annotations
from centernet.engines import EngineConfig
from centernet.errors import MissingDependencyError
from centernet.measure import describe_machine, evaluate_detector
from centernet.measure.bench_device import time_device_batches
from centernet.runtime import Detector

BOX_PX = 2.0  # host vs device box corners, pixels (the CUDA tests' tolerance)
SCORE_ABS = 5e-3  # host vs device scores
PARITY_THRESHOLD = 0.3  # boxes compared: those the host scores at or above this


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="small sizes: checks the script runs")
    p.add_argument("--out", default="runs/gpu_check")
    p.add_argument("--checkpoint", type=Path, default=None, help="the full-size model")
    p.add_argument("--images", type=Path, default=None, help="its annotated images")
    p.add_argument("--ann", type=Path, default=None, help="their instances.json")
    p.add_argument("--parity-images", type=int, default=50)
    p.add_argument("--ap-precisions", default="fp32,fp16", help="on the CPU: fp32,bf16")
    p.add_argument("--profile-batch", type=int, default=32)
    p.add_argument("--input-size", type=int, default=None, help="the full-size model's side")
    p.add_argument("--table-args", default="", help="more bench_gpu.py arguments")
    args = p.parse_args(argv)
    if (args.images is None) != (args.ann is None) or (args.images and not args.checkpoint):
        p.error("--images and --ann go together, with --checkpoint")
    return args


def machine(device: str) -> dict:
    """GPU, driver, torch and torchvision versions, and the CPU."""
    found = {"cpu": describe_machine(), "torch": torch.__version__}
    try:
        import torchvision

        found["torchvision"] = torchvision.__version__
    except ImportError:
        found["torchvision"] = None
    if device == "cuda":
        found["gpu"] = torch.cuda.get_device_name(0)
        found["cuda"] = torch.version.cuda
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            found["driver"] = subprocess.run(
                query, capture_output=True, text=True, timeout=20
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found["driver"] = None
    return found


def compare_boxes(host, device) -> dict:
    """Each host box scoring >= PARITY_THRESHOLD against the device's closest box of its
    class: the largest corner and score differences, and how many are off."""
    worst_px, worst_score, off, compared = 0.0, 0.0, 0, 0
    for a, b in zip(host, device):
        for box, score, cls in zip(a.xyxy, a.scores, a.class_ids):
            if score < PARITY_THRESHOLD:
                break  # sorted by score
            compared += 1
            same = b.class_ids == cls
            if not same.any():
                off += 1
                continue
            px = np.abs(b.xyxy[same] - box).max(axis=1)
            i = int(np.argmin(px))
            ds = abs(float(b.scores[same][i]) - float(score))
            worst_px, worst_score = max(worst_px, float(px[i])), max(worst_score, ds)
            off += int(px[i] > BOX_PX or ds > SCORE_ABS)
    return {
        "boxes_compared": compared,
        "boxes_off": off,
        "max_corner_px": worst_px,
        "max_score_diff": worst_score,
        "same": off == 0 and compared > 0,
    }


def full_size(args, log) -> dict:
    """Host vs device boxes, and AP per precision, of the given checkpoint."""
    annotations = load_annotations(args.ann)
    paths = [str(args.images / im.file_name) for im in annotations.images]
    size = {"input_size": (args.input_size,) * 2} if args.input_size else {}

    def detector(pipeline: str, device: str, precision: str) -> Detector:
        options = EngineConfig(device=device, precision=precision, **size)
        return Detector(
            args.checkpoint, engine="torch", batch_size=8, options=options, pipeline=pipeline
        )

    started = time.perf_counter()
    host = detector("host", "cpu", "fp32")
    on_host = host(paths[: args.parity_images])
    log(f"host fp32 (CPU): {len(on_host)} images in {time.perf_counter() - started:.0f} s")
    on_device = detector("device", args.device, "fp32")(paths[: args.parity_images])
    parity = compare_boxes(on_host, on_device)
    log(f"host vs device fp32: {parity}")
    ap, evaluator = {}, "pycocotools"
    runs = [("host", "cpu", "fp32")] + [
        ("device", args.device, p) for p in args.ap_precisions.split(",")
    ]
    for pipeline, device, precision in runs:
        found = host if pipeline == "host" else detector(pipeline, device, precision)
        try:
            value = evaluate_detector(found, annotations, args.images).stats["AP"]
        except MissingDependencyError:
            evaluator = "built-in COCO box AP (pycocotools not installed)"
            value = bench_gpu.builtin_box_ap(found, annotations, args.images)
        ap[f"{pipeline} {precision}"] = value
        log(f"AP {pipeline} {precision}: {value:.4f}")
        bench_gpu.release(args.device)
    return {
        "checkpoint": str(args.checkpoint),
        "images": len(paths),
        "parity_images": min(args.parity_images, len(paths)),
        "parity": parity,
        "ap": ap,
        "evaluator": evaluator,
    }


def profile(args, log) -> dict:
    """torch.profiler over the device pipeline end to end (fp16 on CUDA), JPEG bytes to
    Detections, one batch after another in this thread (the profiler sees only the
    threads it runs in; ``Detector.stream`` would run the stages in its own): the operators
    that took the most device (or CPU) time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cuda = args.device == "cuda"
    precision = "fp16" if cuda else "fp32"
    batch = args.profile_batch
    size = {"input_size": (args.input_size,) * 2} if args.input_size else {}
    options = EngineConfig(device=args.device, precision=precision, **size)
    detector = Detector(
        args.checkpoint, engine="torch", batch_size=batch, options=options, pipeline="device"
    )
    encoded = bench_gpu.jpeg_bytes(batch)
    rounds = 3
    time_device_batches(detector, encoded, iterations=1, warmup=1)  # graphs, decoder
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        timing = time_device_batches(detector, encoded, iterations=rounds, warmup=0)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    rows = sorted(prof.key_averages(), key=lambda e: -getattr(e, key, 0.0))[:15]
    total = sum(getattr(e, key, 0.0) for e in prof.key_averages()) or 1.0
    top = [
        {
            "op": e.key,
            "calls": e.count,
            "ms": getattr(e, key, 0.0) / 1e3,
            "share": getattr(e, key, 0.0) / total,
        }
        for e in rows
    ]
    log(f"profiled {rounds} batches of {batch}: {timing.images_per_s:.1f} img/s")
    bench_gpu.release(args.device)
    return {
        "batch": batch,
        "precision": precision,
        "images": rounds * batch,
        "images_per_s_profiled": timing.images_per_s,
        "time": key,
        "top": top,
    }


def markdown(data: dict) -> str:
    m = data["machine"]
    lines = [
        f"# GPU check ({m.get('gpu', 'CPU')}, driver {m.get('driver')}, torch "
        f"{m['torch']}, torchvision {m['torchvision']}; CPU {m['cpu']})",
        "",
        f"Command: `{data['command']}`",
        "",
        f"{data['seconds']:.0f} s in all.",
        "",
    ]
    table = Path(data["out"]) / "bench_gpu.md"
    if table.exists():
        lines += ["## The GPU table (bench_gpu.py)", "", table.read_text(), ""]
    full = data.get("full_size")
    if full:
        p = full["parity"]
        lines += [
            "## The full-size model",
            "",
            f"`{full['checkpoint']}`, {full['images']} annotated images (AP: {full['evaluator']}).",
            "",
            f"Host (CPU) vs device fp32 on {full['parity_images']} images: "
            f"{'**the same boxes**' if p['same'] else '**boxes differ**'} "
            f"({p['boxes_off']} of {p['boxes_compared']} boxes off; largest corner "
            f"difference {p['max_corner_px']:.3f} px, score {p['max_score_diff']:.5f}; "
            f"tolerance {BOX_PX} px, {SCORE_ABS}).",
            "",
            "| run | AP |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {value:.4f} |" for name, value in full["ap"].items()]
        lines.append("")
    prof = data.get("profile")
    if prof:
        lines += [
            "## Where the time went",
            "",
            f"torch.profiler, device pipeline end to end, "
            f"{prof['precision']} batch {prof['batch']}, {prof['images']} JPEGs "
            f"({prof['images_per_s_profiled']:.0f} img/s under the profiler), by "
            f"{prof['time']}:",
            "",
            "| operator | calls | ms | share |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| `{r['op']}` | {r['calls']} | {r['ms']:.1f} | {r['share']:.1%} |"
            for r in prof["top"]
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch has no CUDA device here; --device cpu --quick", file=sys.stderr)
        return 2

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {text}", file=sys.stderr, flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = [
        "--device",
        args.device,
        "--out",
        str(out),
        "--batches",
        "1,2" if args.quick else "1,8,32",
        *args.table_args.split(),
    ]
    table_rc = bench_gpu.main([*table, "--quick"] if args.quick else table)
    data = {
        "machine": machine(args.device),
        "out": str(out),
        "table_rc": table_rc,
        "command": "python benchmarks/gpu_check.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if args.checkpoint and args.images:
        data["full_size"] = full_size(args, log)
    if args.checkpoint:
        data["profile"] = profile(args, log)
    data["seconds"] = time.perf_counter() - started
    (out / "gpu_check.json").write_text(json.dumps(data, indent=2))
    (out / "gpu_check.md").write_text(markdown(data))
    print(markdown(data))
    log(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    parity = data.get("full_size", {}).get("parity", {"same": True})
    return 0 if table_rc == 0 and parity["same"] else 1


if __name__ == "__main__":
    sys.exit(main())
