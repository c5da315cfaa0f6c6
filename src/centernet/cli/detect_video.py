"""``detect`` on video files and live streams (``--source``): the options, one
Detector over every source, a bar per source, the summary lines. The ``video`` package
does the work."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from centernet.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    open_detector,
    positive_int,
    profile_table,
)
from centernet.cli.progress import bar as progress_bar
from centernet.errors import CenterNetError


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


def refuse_video_options(args: argparse.Namespace) -> None:
    given = [n for n in _VIDEO_OPTIONS if getattr(args, n)] + (
        ["frame_stride"] if args.frame_stride != 1 else []
    )
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise CenterNetError(f"{flags}: for videos and streams; no video among the inputs")


def detect_videos(args: argparse.Namespace, videos: list[str]) -> int:
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
    detector = open_detector(args, detector_threshold(settings), args.max_dets)
    status, taken = EXIT_OK, set()
    for location in locations:
        source = open_source(location, settings)
        name = output_name(source.info.location, taken)
        with (
            _VideoBar(source.info, settings.selection, name) as shown,
            _interrupt_ends(source.info.live) as stop,
        ):
            profile = StageProfile() if args.profile else None
            summary = run_video(
                detector, source, args.out, name, settings, shown.update, stop, profile
            )
        for reason in summary.errors:
            print(f"centernet: {source.info.location}: {reason}", file=sys.stderr)
        print(_video_summary(summary, args.threshold, settings.track))
        if profile is not None:
            print(profile_table(profile))
        status = max(status, EXIT_SOME_FAILED if summary.errors else EXIT_OK)
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
        total = info.expected_frames(selection)
        self.bar = progress_bar(total, name, unit="frame")

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
