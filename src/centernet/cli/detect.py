"""Running models: ``detect`` (images: ``detect_images.py``; videos and streams:
``detect_video.py``; on Ray: ``distributed.py``) and ``eval`` (COCO mAP on annotated
images)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from centernet.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    AddCommand,
    add_engine_args,
    open_detector,
    positive_int,
    report_skipped,
)
from centernet.cli.detect_images import detect_images
from centernet.cli.detect_video import add_video_args, detect_videos, refuse_video_options
from centernet.cli.distributed import add_ray_args, detect_with_ray, evaluate_with_ray
from centernet.cli.progress import progress
from centernet.errors import CenterNetError


def register(add_command: AddCommand) -> None:
    """Adds ``detect`` and ``eval``."""
    add_detect(add_command)
    add_eval(add_command)


def add_detect(add_command: AddCommand) -> None:
    """The ``detect`` subcommand's arguments."""
    p = add_command(
        "detect",
        help="run a model on images, folders, globs, video files or a stream (--source); "
        "JSON results, annotated copies",
        description="Detect objects in images, folders, globs, video files (by extension) or "
        "one live stream (--source). Images: OUT/detections.jsonl (a line per image, as "
        "it is done) and OUT/detections.json (COCO results); videos: "
        "OUT/<name>.detections.jsonl (a line per frame).",
    )
    p.add_argument("model", help=".onnx export or build, OpenVINO .xml, or .pth checkpoint")
    p.add_argument("images", nargs="*", help="image files, folders, globs and video files")
    p.add_argument("--file-list", default=None, help="a file naming one image per line")
    p.add_argument("--out", default="runs/detect", help="output folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with a stopped run (same --out): skip the images already in "
        "OUT/detections.jsonl (with --ray: in the complete shards of OUT/shards); without "
        "it those are replaced",
    )
    p.add_argument("--save-images", action="store_true", help="write annotated copies")
    p.add_argument("--threshold", type=float, default=0.3, help="drop boxes scoring below")
    p.add_argument("--max-dets", type=positive_int, default=100, help="boxes per image (K)")
    p.add_argument("--ann", default=None, help="COCO annotations: image ids and categories")
    p.add_argument(
        "--profile", action="store_true", help="print where the time went, stage by stage"
    )
    add_engine_args(p)
    add_ray_args(p)
    add_video_args(p)
    p.set_defaults(func=cmd_detect)


def _check_pipeline(args: argparse.Namespace) -> None:
    if args.ray and args.pipeline == "device":  # Ray actors run the host pipeline
        raise CenterNetError("--pipeline device runs in this process: drop --ray, or use host")


def cmd_detect(args: argparse.Namespace) -> int:
    from centernet.video.sources import split_videos

    _check_pipeline(args)
    videos, args.images = split_videos(args.images)
    if videos or args.source is not None:
        if args.ray:
            raise CenterNetError("videos and streams run in this process: drop --ray")
        if args.resume:
            raise CenterNetError("--resume is for images; videos and streams start afresh")
        status = detect_videos(args, videos)
        if args.images or args.file_list:
            status = max(status, detect_images(args))
        return status
    refuse_video_options(args)
    if args.ray:
        return detect_with_ray(args)
    return detect_images(args)


def add_eval(add_command: AddCommand) -> None:
    """The ``eval`` subcommand's arguments."""
    p = add_command("eval", help="COCO mAP of a model on annotated images")
    p.add_argument("model", help=".onnx export or .pth checkpoint")
    p.add_argument("--images", required=True, help="folder of the annotated images")
    p.add_argument("--ann", required=True, help="COCO instances.json")
    p.add_argument("--limit", type=positive_int, default=None, help="first N images by id")
    p.add_argument("--out", default="runs/eval", help="folder for metrics.json and detections.json")
    add_engine_args(p)
    add_ray_args(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from centernet.datasets.coco import load_annotations
    from centernet.datasets.coco_scoring import COCO_STAT_LABELS, COCO_STAT_NAMES
    from centernet.measure.evaluate import evaluate_detector

    annotations = load_annotations(args.ann)
    if not annotations.images:
        raise CenterNetError(f"{args.ann} lists no images")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_pipeline(args)
    if args.ray:
        outcome, spec = evaluate_with_ray(args, annotations, out)
        engine_name = f"{args.engine} (ray)"
    else:
        detector = open_detector(args, threshold=0.0, max_dets=100)
        count = min(args.limit or len(annotations.images), len(annotations.images))
        outcome = evaluate_detector(
            detector,
            annotations,
            args.images,
            args.limit,
            progress=lambda stream: progress(stream, count, "eval"),
        )
        spec, engine_name = detector.spec, detector.engine.name
    for source, reason in outcome.failures:
        report_skipped(source, reason)
    (out / "detections.json").write_text(json.dumps(outcome.results))
    report = {
        "model": str(args.model),
        "precision": spec.precision,
        "engine": engine_name,
        "annotations": str(args.ann),
        "images": outcome.images,
        "failed": len(outcome.failures),
        "seconds": outcome.seconds,
        "metrics": outcome.stats,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    stats = outcome.stats
    for name, label in zip(COCO_STAT_NAMES, COCO_STAT_LABELS):
        print(f"{label:<50} = {stats[name]:.3f}")
    print(
        f"evaluated {outcome.images - len(outcome.failures)} of {outcome.images} images "
        f"in {outcome.seconds:.1f} s; AP {stats['AP']:.3f} AP50 {stats['AP50']:.3f}; "
        f"wrote {out / 'metrics.json'} and {out / 'detections.json'}"
    )
    return EXIT_SOME_FAILED if outcome.failures else EXIT_OK
