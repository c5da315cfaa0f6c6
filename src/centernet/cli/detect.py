"""Running models on images: ``detect`` (boxes, COCO JSON, annotated copies) and ``eval``
(COCO mAP on annotated images)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path

from centernet.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    AddCommand,
    add_engine_args,
    announce_engine,
    detector_config,
    positive_int,
    progress,
    report_skipped,
)
from centernet.cli.distributed import add_ray_args, detect_with_ray, evaluate_with_ray
from centernet.errors import CenterNetError


def register(add_command: AddCommand) -> None:
    """Adds ``detect`` and ``eval``."""
    add_detect(add_command)
    add_eval(add_command)


def add_detect(add_command: AddCommand) -> None:
    """The ``detect`` subcommand's arguments."""
    p = add_command("detect", help="run a model on images; COCO JSON + annotated copies")
    p.add_argument("model", help=".onnx export or .pth checkpoint")
    p.add_argument("images", nargs="*", help="files, folders or globs")
    p.add_argument("--file-list", default=None, help="a file naming one image per line")
    p.add_argument("--out", required=True, help="output folder")
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


def _unique_name(path: str, taken: set[str]) -> str:
    name = Path(path).name
    stem, suffix, n = Path(name).stem, Path(name).suffix, 1
    while name in taken:
        name = f"{stem}_{n}{suffix}"
        n += 1
    taken.add(name)
    return name


def cmd_detect(args: argparse.Namespace) -> int:
    from centernet.video.sources import split_videos

    _check_pipeline(args)
    videos, args.images = split_videos(args.images)
    if videos or args.source is not None:
        if args.ray:
            raise CenterNetError("videos and streams run in this process: drop --ray")
        return _detect_videos(args, videos)
    _refuse_video_options(args)
    if args.ray:
        return detect_with_ray(args)
    return _detect_images(args)


def _open_detector(args: argparse.Namespace, threshold: float):
    from centernet.runtime.detector import Detector

    detector = Detector(args.model, detector_config(args, threshold, args.max_dets))
    announce_engine(args.engine, detector.engine)
    return detector


def _detect_images(args: argparse.Namespace) -> int:
    import cv2

    from centernet.datasets.coco import category_ids_for, detections_to_coco, load_annotations
    from centernet.runtime.draw import draw_detections
    from centernet.runtime.images import collect_image_paths, read_image
    from centernet.runtime.profiling import StageProfile

    if not args.images and not args.file_list:
        raise CenterNetError("no images given (files, folders, globs or --file-list)")
    inputs = collect_image_paths(args.images, args.file_list)
    paths = inputs.paths
    detector = _open_detector(args, args.threshold)
    for item, reason in inputs.unmatched:  # same rule as an unreadable file: named, skipped
        report_skipped(item, reason)
    annotations = load_annotations(args.ann) if args.ann else None
    ids_by_name = {im.file_name: im.id for im in annotations.images} if annotations else {}
    category_ids = category_ids_for(detector.spec.class_names, annotations)
    out = Path(args.out)
    (out / "images" if args.save_images else out).mkdir(parents=True, exist_ok=True)
    entries, failed, boxes, taken = [], 0, 0, set()
    profile = StageProfile() if args.profile else None
    started = time.perf_counter()
    for result in progress(detector.stream(paths, profile), len(paths), "detect"):
        if not result.ok:
            failed += 1
            report_skipped(result.source, result.error)
            continue
        name = Path(result.source).name
        entries += detections_to_coco(
            result.detections, category_ids, file_name=name, image_id=ids_by_name.get(name)
        )
        boxes += len(result.detections)
        if args.save_images:
            image = result.image  # None where the device pipeline decoded it on the GPU
            image = read_image(result.source) if image is None else image
            drawn = draw_detections(image, result.detections, detector.spec.class_names)
            cv2.imwrite(str(out / "images" / _unique_name(result.source, taken)), drawn)
    seconds = time.perf_counter() - started
    (out / "detections.json").write_text(json.dumps(entries))
    done = len(paths) - failed
    unmatched = len(inputs.unmatched)
    print(
        f"detected {done} of {len(paths)} images in {seconds:.1f} s "
        f"({done / max(seconds, 1e-9):.1f} img/s): {boxes} boxes >= {args.threshold}; "
        f"{failed} unreadable"
        + (f", {unmatched} folders/patterns matched nothing" if unmatched else "")
        + f"; wrote {out / 'detections.json'}"
        + (f" and {done} images in {out / 'images'}" if args.save_images else "")
    )
    if profile is not None:
        print(_profile_table(profile))
    if "weights" in detector.spec.extra:
        print(f"note: {detector.spec.extra['weights']}")
    return EXIT_SOME_FAILED if failed or unmatched else EXIT_OK


def _profile_table(profile) -> str:
    """Where the time went, per stage: a markdown table (threads overlap, so shares of the
    wall time add up to more than 100 %)."""
    lines = [
        f"profile: {profile.images} images in {profile.wall:.2f} s",
        "| stage | thread | ms per image | share of wall time |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {stage} | {thread} | {ms:.2f} | {share:.0%} |"
        for stage, thread, ms, share in profile.rows()
    ]
    return "\n".join(lines)


def add_video_args(parser: argparse.ArgumentParser) -> None:
    """Video files among the inputs, or one live --source; what to run on and write."""
    group = parser.add_argument_group(
        "videos and streams (files among the inputs by extension, or --source; "
        "--track needs pip install 'centernet-deploy[video]')"
    )
    group.add_argument(
        "--source",
        default=None,
        help="one live source: a stream URL (rtsp://, http://, ...), a camera index (0), or a "
        "video file played at its own pace; Ctrl-C ends it and keeps what was done",
    )
    group.add_argument(
        "--save-video", action="store_true", help="also write DIR/<name>.annotated.mp4"
    )
    group.add_argument("--frame-stride", type=positive_int, default=1, help="every Nth frame")
    group.add_argument("--start", type=float, default=0.0, help="first second to detect on")
    group.add_argument("--end", type=float, default=None, help="stop at this second")
    group.add_argument("--max-frames", type=positive_int, default=None, help="frames per video")
    group.add_argument("--track", action="store_true", help="track ids across frames (ByteTrack)")


_VIDEO_OPTIONS = ("save_video", "track", "start", "end", "max_frames")


def _refuse_video_options(args: argparse.Namespace) -> None:
    given = [n for n in _VIDEO_OPTIONS if getattr(args, n)] + (
        ["frame_stride"] if args.frame_stride != 1 else []
    )
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise CenterNetError(f"{flags}: for videos and streams; no video among the inputs")


def _detect_videos(args: argparse.Namespace, videos: list[str]) -> int:
    """Each video (or the --source stream) through one Detector: JSONL, annotated video."""
    from centernet.runtime.profiling import StageProfile
    from centernet.video.output import output_name
    from centernet.video.run import VideoRunConfig, detector_threshold, open_source, run_video
    from centernet.video.sources import FrameSelectionConfig
    from centernet.video.tracking import require_tracking

    if args.source is not None and (videos or args.images or args.file_list):
        raise CenterNetError("--source runs one live stream: give no other inputs with it")
    settings = VideoRunConfig(
        selection=FrameSelectionConfig(args.frame_stride, args.start, args.end, args.max_frames),
        threshold=args.threshold,
        save_video=args.save_video,
        track=args.track,
        live=args.source is not None,  # a URL among the inputs is read in full, as a file
    )
    if settings.track:
        require_tracking()
    _quiet_ffmpeg()
    locations = [args.source] if args.source is not None else videos
    for location in locations:  # every source opens, or one line and exit 2, before any work
        open_source(location, settings).close()
    detector = _open_detector(args, detector_threshold(settings))
    status, taken = EXIT_OK, set()
    for location in locations:
        source = open_source(location, settings)
        name = output_name(source.info.location, taken)
        with (
            _VideoBar(source.info, settings.selection, name) as bar,
            _interrupt_ends(source.info.live) as stop,
        ):
            profile = StageProfile() if args.profile else None
            summary = run_video(
                detector, source, args.out, name, settings, bar.update, stop, profile
            )
        for reason in summary.errors:
            print(f"centernet: {source.info.location}: {reason}", file=sys.stderr)
        print(_video_summary(summary, args.threshold, settings.track))
        if profile is not None:
            print(_profile_table(profile))
        status = max(status, EXIT_SOME_FAILED if summary.errors else EXIT_OK)
    if args.images or args.file_list:
        status = max(status, _detect_images(args))
    return status


def _quiet_ffmpeg() -> None:
    """FFmpeg and OpenCV print their own warnings on stderr (e.g. on a URL that does not
    open); our message says what happened in one line. OPENCV_FFMPEG_LOGLEVEL=24 (and
    OPENCV_LOG_LEVEL=WARNING) bring theirs back."""
    import os

    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class _VideoBar:
    """A file: frames/s and time left. A live stream: real-time factor and dropped frames."""

    def __init__(self, info, selection, name: str) -> None:
        from tqdm import tqdm

        total = info.expected_frames(selection)
        self.bar = tqdm(total=total, desc=name, unit="frame", file=sys.stderr, disable=None)

    def update(self, progress) -> None:
        if progress.live:
            factor = progress.real_time_factor
            rate = "" if factor is None else f"x{factor:.2f} real time, "
            self.bar.set_postfix_str(f"{rate}{progress.dropped} dropped", refresh=False)
        self.bar.update(progress.processed - self.bar.n)

    def __enter__(self) -> _VideoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


@contextlib.contextmanager
def _interrupt_ends(live: bool):
    """On a live stream, the first Ctrl-C ends it gracefully (what was read is detected and
    written; exit 0); a second one interrupts at once. Elsewhere Ctrl-C interrupts."""
    if not live or threading.current_thread() is not threading.main_thread():
        yield None
        return
    stop = threading.Event()

    def end(_number: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, end)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _video_summary(summary, threshold: float, track: bool) -> str:
    info = summary.source
    parts = [
        f"{info.location}: {summary.processed} frames in {summary.seconds:.1f} s "
        f"({summary.frames_per_s:.1f} frames/s), {summary.boxes} boxes >= {threshold}"
    ]
    if track:
        parts.append(f"{summary.tracks} tracks")
    if info.live:
        parts.append(f"{summary.read.dropped} dropped (engine behind)")
    if summary.interrupted:
        parts.append("ended by Ctrl-C")
    wrote = f"wrote {summary.jsonl}" + (f" and {summary.video}" if summary.video else "")
    return ", ".join(parts) + "; " + wrote


def add_eval(add_command: AddCommand) -> None:
    """The ``eval`` subcommand's arguments."""
    p = add_command("eval", help="COCO mAP of a model on annotated images")
    p.add_argument("model", help=".onnx export or .pth checkpoint")
    p.add_argument("--images", required=True, help="folder of the annotated images")
    p.add_argument("--ann", required=True, help="COCO instances.json")
    p.add_argument("--limit", type=positive_int, default=None, help="first N images by id")
    p.add_argument("--out", default="runs/eval", help="folder for metrics.json and detections")
    add_engine_args(p)
    add_ray_args(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from centernet.datasets.coco import load_annotations
    from centernet.datasets.coco_scoring import COCO_STAT_LABELS, COCO_STAT_NAMES
    from centernet.measure.evaluate import evaluate_detector
    from centernet.runtime.detector import Detector

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
        detector = Detector(args.model, detector_config(args, threshold=0.0, max_dets=100))
        announce_engine(args.engine, detector.engine)
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
        f"wrote {out / 'metrics.json'}"
    )
    return EXIT_SOME_FAILED if outcome.failures else EXIT_OK
