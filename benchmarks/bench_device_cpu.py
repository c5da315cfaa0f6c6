"""The device pipeline against the host pipeline on the CPU: agreement and speed, one run.

    python benchmarks/bench_device_cpu.py [--ap-images 100] [--batches 1,4] [--json F]

Agreement: the bundled model (torch engine, its own 768x768) on the bundled photos and on
held-out synthetic images, fix_res and keep_res, batch 1 and 3: the largest box and score
differences between ``Detector(pipeline="device")`` and the host pipeline, and the COCO
AP of both on ``--ap-images`` synthetic images (seed 1000). Speed: images/s from files to
Detections through each pipeline, interleaved (host, device, host, device) so that drift
on a shared machine hits both alike, best of the rounds. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from centernet.datasets import load_annotations, write_dataset
from centernet.demo import EVAL_SEED, bundled_photos, default_model_path
from centernet.measure import describe_machine, evaluate_detector, time_end_to_end
from centernet.runtime import Detector


def agreement(model: Path, paths: list[str]) -> dict:
    """Largest |box| and |score| differences over every image and setting."""
    worst = {"box_px": 0.0, "score": 0.0, "count_or_class_mismatches": 0, "images": 0}
    for keep_res in (False, True):
        for batch in (1, 3):
            kwargs = {"batch_size": batch, "keep_res": keep_res}
            host = Detector(model, **kwargs)(paths)
            device = Detector(model, pipeline="device", **kwargs)(paths)
            for a, b in zip(host, device):
                worst["images"] += 1
                if len(a) != len(b) or not np.array_equal(a.class_ids, b.class_ids):
                    worst["count_or_class_mismatches"] += 1
                    continue
                if len(a):
                    box = float(np.abs(a.xyxy - b.xyxy).max())
                    worst["box_px"] = max(worst["box_px"], box)
                    worst["score"] = max(worst["score"], float(np.abs(a.scores - b.scores).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ap-images", type=int, default=100)
    p.add_argument("--agreement-images", type=int, default=12, help="synthetic, plus photos")
    p.add_argument("--batches", default="1,4")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    model = default_model_path()
    photos = [str(path) for path in bundled_photos()]
    result: dict = {"machine": describe_machine(), "model": str(model)}
    with tempfile.TemporaryDirectory() as tmp:
        ann = write_dataset(Path(tmp), args.ap_images, seed=EVAL_SEED)
        images = Path(tmp) / "images"
        synthetic = sorted(str(f) for f in images.iterdir())[: args.agreement_images]
        result["agreement"] = agreement(model, photos + synthetic)
        print(f"agreement: {result['agreement']}", file=sys.stderr)
        annotations = load_annotations(ann)
        result["AP"] = {
            pipeline: evaluate_detector(
                Detector(model, batch_size=4, pipeline=pipeline), annotations, images
            ).stats["AP"]
            for pipeline in ("host", "device")
        }
        print(f"AP: {result['AP']}", file=sys.stderr)
        work = sorted(str(f) for f in images.iterdir())[:32]
        speed = {}
        for batch in (int(b) for b in args.batches.split(",")):
            rates: dict[str, list[float]] = {"host": [], "device": []}
            for _ in range(args.rounds):
                for pipeline in ("host", "device"):
                    detector = Detector(model, batch_size=batch, pipeline=pipeline)
                    rates[pipeline].append(time_end_to_end(detector, work, warmup=batch))
            speed[batch] = {k: max(v) for k, v in rates.items()}
            print(f"batch {batch}: {speed[batch]}", file=sys.stderr)
        result["images_per_s"] = speed
    a = result["agreement"]
    print(f"Device vs host pipeline on the CPU; {result['machine']}; bundled model at 768x768\n")
    print(
        f"- {a['images']} image runs (4 photos + {args.agreement_images} synthetic, fix_res "
        f"and keep_res, batch 1 and 3): largest box difference {a['box_px']:.3g} px, largest "
        f"score difference {a['score']:.3g}, {a['count_or_class_mismatches']} runs with other "
        "counts or classes"
    )
    ap = result["AP"]
    print(
        f"- COCO AP on {args.ap_images} held-out synthetic images: host {ap['host']:.4f}, "
        f"device {ap['device']:.4f} (difference {ap['device'] - ap['host']:+.4f})\n"
    )
    print("| batch | host pipeline img/s | device pipeline img/s | device / host |")
    print("|---|---|---|---|")
    for batch, r in result["images_per_s"].items():
        print(f"| {batch} | {r['host']:.2f} | {r['device']:.2f} | {r['device'] / r['host']:.0%} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
