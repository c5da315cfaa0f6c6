"""One source through one ``Detector.stream``: frames in, JSON lines (and an annotated video,
and track ids) out.

The source's reader thread decodes ahead; its frames go to the Detector as BGR arrays
through a single ``stream`` call, so the Detector's reader threads, batching thread,
engine thread and decoder thread overlap exactly as they do for image files, and results
come back in frame order. Each frame's index and timestamp wait in a FIFO beside the
stream (one entry per frame handed in, one result per frame handed out).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from centernet.errors import CenterNetError
from centernet.runtime.detector import Detector
from centernet.runtime.stages import DetectionResult
from centernet.types import Detections
from centernet.video.output import AnnotatedVideo, DetectionsLog
from centernet.video.sources import (
    FrameReader,
    FrameSelectionConfig,
    OpenConfig,
    ReadStatus,
    SourceInfo,
    VideoSource,
)
from centernet.video.tracking import LOW_THRESHOLD, TrackConfig, Tracker

if TYPE_CHECKING:
    from centernet.runtime.profiling import StageProfile


@dataclass(frozen=True)
class VideoRunConfig:
    """How a video or stream is run. ``live``: None lets the source decide (URLs and
    cameras are live, files are not); True plays a file as a live source at its own pace
    (frames dropped when the engine falls behind, as a camera's would be); False reads a
    URL in full, every frame, as a file."""

    selection: FrameSelectionConfig = field(default_factory=FrameSelectionConfig)
    threshold: float = 0.3  # boxes written (a tracked run detects lower: detector_threshold)
    save_video: bool = False
    track: bool = False
    tracking: TrackConfig = field(default_factory=TrackConfig)
    live: bool | None = None
    queue_size: int = 4  # decoded frames waiting for the engine (live: then the oldest drops)
    open: OpenConfig = field(default_factory=OpenConfig)
    codec: str = "mp4v"  # the annotated video's FourCC


@dataclass
class VideoProgress:
    """Where a run is, reported after each processed frame."""

    processed: int
    dropped: int
    timestamp: float
    elapsed: float  # wall seconds since the run started
    live: bool
    frames_per_source_s: float  # the rate frames are wanted: fps / stride (0: unknown)

    @property
    def real_time_factor(self) -> float | None:
        """Frames processed per second over the rate they arrive at (fps / stride): 1.0
        keeps up with a live source, 0.5 processes half its frames (the rest dropped)."""
        if self.frames_per_source_s > 0 and self.elapsed > 0:
            return self.processed / self.elapsed / self.frames_per_source_s
        total = self.processed + self.dropped
        return self.processed / total if total else None


@dataclass
class VideoSummary:
    """What a run did: frames, boxes, tracks, drops, problems, and where it wrote."""

    source: SourceInfo
    processed: int
    boxes: int
    tracks: int
    read: ReadStatus
    seconds: float
    interrupted: bool
    jsonl: Path
    video: Path | None

    @property
    def errors(self) -> list[str]:
        return self.read.errors

    @property
    def frames_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


def detector_threshold(settings: VideoRunConfig) -> float:
    """The Detector's threshold for these settings: lower when tracking (ByteTrack keeps
    tracks alive with low-score boxes; only boxes at ``threshold`` are written)."""
    return min(settings.threshold, LOW_THRESHOLD) if settings.track else settings.threshold


def open_source(location: str | int | Path, settings: VideoRunConfig) -> VideoSource:
    """Open a file, URL or camera index, or raise ``SourceError`` with the reason."""
    return VideoSource(location, live=settings.live, settings=settings.open)


def run_video(
    detector: Detector,
    source: VideoSource,
    out: str | Path,
    name: str,
    settings: VideoRunConfig = VideoRunConfig(),
    on_progress: Callable[[VideoProgress], None] | None = None,
    stop: threading.Event | None = None,
    profile: StageProfile | None = None,
) -> VideoSummary:
    """Detect on ``source``'s frames; write ``out/<name>.detections.jsonl`` (and
    ``<name>.annotated.mp4``). Closes the source.

    Setting ``stop`` ends a run gracefully: reading stops, frames already decoded are still
    detected and written (how a live stream is ended). A KeyboardInterrupt or any error
    still closes both files with every finished frame in them, then propagates.
    """
    if detector.postprocess_config.threshold > detector_threshold(settings):
        raise CenterNetError(
            f"the detector's threshold ({detector.postprocess_config.threshold}) is above "
            f"what this run needs ({detector_threshold(settings)}); make it with "
            "threshold=detector_threshold(settings)"
        )
    info = source.info
    stride = settings.selection.stride
    rate = info.fps / stride if info.fps > 0 else 0.0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reader = FrameReader(source, settings.selection, settings.queue_size, stop=stop)
    outputs = _FrameOutputs(out, name, detector.spec.class_names, settings, rate)
    limit = settings.selection.max_frames if info.live else None  # files: the reader's
    pending: deque[tuple[int, float]] = deque()  # (index, timestamp) of frames handed in
    started = time.perf_counter()
    reader.start()
    stream = detector.stream(_images(reader, pending), profile)
    try:
        if settings.save_video:
            outputs.open_video((info.width, info.height), settings.codec)
        for result in stream:
            index, timestamp = pending.popleft()
            if not result.ok:  # an array always converts; kept for the contract's sake
                reader.status.errors.append(f"frame {index}: {result.error}")
                continue
            outputs.write(index, timestamp, result)
            if on_progress is not None:
                elapsed = time.perf_counter() - started
                on_progress(VideoProgress(outputs.processed, reader.status.dropped, timestamp,
                                          elapsed, info.live, rate))  # fmt: skip
            if limit is not None and outputs.processed >= limit:
                reader.status.finished = "max frames"
                break
    finally:
        reader.close(timeout=settings.open.read_timeout_s)  # no more frames into the stream
        stream.close()  # the Detector's threads are joined
        outputs.close()
    return VideoSummary(
        source=info,
        processed=outputs.processed,
        boxes=outputs.boxes,
        tracks=len(outputs.track_ids_seen),
        read=reader.status,
        seconds=time.perf_counter() - started,
        interrupted=stop is not None and stop.is_set(),
        jsonl=outputs.log.path,
        video=outputs.video.path if outputs.video is not None else None,
    )


class _FrameOutputs:
    """What happens to each detected frame: tracking (``--track``), the threshold, one
    JSON line, one annotated video frame; and the counts the summary reports."""

    def __init__(
        self, out: Path, name: str, class_names: list[str], settings: VideoRunConfig, rate: float
    ) -> None:
        self.out, self.name, self.class_names = out, name, class_names
        self.settings, self.rate = settings, rate
        self.log = DetectionsLog(out / f"{name}.detections.jsonl", class_names)
        self.video: AnnotatedVideo | None = None
        self.tracker = (
            Tracker(rate, settings.threshold, settings.tracking) if settings.track else None
        )
        self.processed = self.boxes = 0
        self.track_ids_seen: set[int] = set()

    def open_video(self, size: tuple[int, int], codec: str) -> None:
        path = self.out / f"{self.name}.annotated.mp4"
        self.video = AnnotatedVideo(path, self.rate or 25.0, size, self.class_names, codec)

    def write(self, index: int, timestamp: float, result: DetectionResult) -> None:
        detections = result.detections
        assert detections is not None and result.image is not None
        ids = None
        if self.tracker is not None:
            detections, ids = self.tracker.update(detections)
        keep = detections.scores >= self.settings.threshold
        detections = _select(detections, keep)
        if ids is not None:
            ids = ids[keep]
            self.track_ids_seen.update(int(t) for t in ids if t >= 0)
        self.log.write(index, timestamp, detections, ids)
        if self.video is not None:
            self.video.write(result.image, detections, ids)
        self.processed += 1
        self.boxes += len(detections)

    def close(self) -> None:
        self.log.close()
        if self.video is not None:
            self.video.close()


def _images(reader: FrameReader, pending: deque[tuple[int, float]]) -> Iterator[np.ndarray]:
    """The reader's frames as arrays for ``Detector.stream``; runs in its batching thread."""
    for frame in reader:
        pending.append((frame.index, frame.timestamp))
        yield frame.image


def _select(detections: Detections, keep: np.ndarray) -> Detections:
    return detections if keep.all() else detections[keep]
