"""Frame sources: video files, stream URLs and camera indices, decoded by OpenCV (its
FFmpeg backend; cameras through the platform's capture backend) on a thread of their own.

Every frame carries its index in the source (counted from 0, before any stride) and its
timestamp in seconds: the container's for files and URLs, seconds since the first frame
for a camera. A file is read in full and in order: its reader waits for the engine. A
live source (a URL, a camera, or a file played at its own pace) cannot wait: when the
engine falls behind, the oldest frame waiting is dropped and counted, so memory stays
bounded and what is detected stays recent. A file that stops decoding early (truncated,
corrupt) keeps the frames that decoded; the rest is recorded with its reason.
"""

from __future__ import annotations

import glob
import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from centernet.errors import CenterNetError
from centernet.runtime.images import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".3gp", ".ogv",
)  # fmt: skip
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
#: ISO-BMFF brands of still images (HEIF, AVIF): an ``ftyp`` box that is not a video.
_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


class SourceError(CenterNetError):
    """A source that cannot be opened: the CLI prints it as one line and exits 2."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"cannot open {location}: {reason}")
        self.location = location
        self.reason = reason


@dataclass(frozen=True)
class FrameSelectionConfig:
    """Which frames of a source to detect on.

    ``start``/``end`` are seconds on the source's clock (``end`` exclusive, None: to the
    end); ``stride`` keeps every Nth frame counted from the first one at or after
    ``start``; ``max_frames`` stops after that many kept frames.
    """

    stride: int = 1
    start: float = 0.0
    end: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise CenterNetError(f"frame stride must be >= 1, got {self.stride}")
        if not self.start >= 0:
            raise CenterNetError(f"start must be >= 0 seconds, got {self.start}")
        if self.end is not None and not self.end > self.start:
            raise CenterNetError(f"end ({self.end} s) must be after start ({self.start} s)")
        if self.max_frames is not None and self.max_frames < 1:
            raise CenterNetError(f"max frames must be >= 1, got {self.max_frames}")


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source, from 0, counting every decoded frame
    timestamp: float  # seconds (container time; a camera: since its first frame)
    image: np.ndarray  # BGR uint8


@dataclass(frozen=True)
class SourceInfo:
    """What a source declares about itself when opened."""

    location: str  # the path, URL or "camera N"
    live: bool
    fps: float  # 0.0 when the source does not say
    width: int
    height: int
    frame_count: int | None  # frames the container declares; None if it does not say

    def expected_frames(self, selection: FrameSelectionConfig) -> int | None:
        """Frames ``selection`` keeps from a file, from what it declares (for a progress
        bar); None for a live source or a file that declares no frame count."""
        if self.live or not self.frame_count:
            return None if self.live else selection.max_frames
        last = self.frame_count
        if self.fps > 0 and selection.end is not None:
            last = min(last, math.ceil(selection.end * self.fps - 1e-9))
        first = math.ceil(selection.start * self.fps - 1e-9) if self.fps > 0 else 0
        kept = max(0, -(-(last - first) // selection.stride))
        return kept if selection.max_frames is None else min(kept, selection.max_frames)


@dataclass
class ReadStatus:
    """What a reader has done so far: decoded, kept, dropped, and what went wrong."""

    decoded: int = 0  # frames decoded from the source (kept or not)
    kept: int = 0  # frames selected and handed to the queue
    dropped: int = 0  # live sources: kept frames dropped because the engine fell behind
    errors: list[str] = field(default_factory=list)
    finished: str = ""  # why reading stopped: "end", "end time", "max frames", "stopped", ...


def is_stream_url(text: str) -> bool:
    """Whether ``text`` is a URL FFmpeg reads as a stream (rtsp://, http://, ...)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


def camera_index(location: str | int | Path) -> int | None:
    """The camera index ``location`` names ("0", 0), or None (a Path is always a file)."""
    if isinstance(location, int):
        return location
    return int(location) if isinstance(location, str) and location.strip().isdigit() else None


def looks_like_video(path: str | Path) -> bool:
    """A video file by its extension, or, for an existing file whose extension is neither an
    image's nor a video's, by the signature of a video container in its first bytes."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES or not p.is_file():
        return False
    try:
        with p.open("rb") as handle:
            head = handle.read(192)
    except OSError:
        return False
    return _video_signature(head)


def _video_signature(head: bytes) -> bool:
    """MP4/MOV/3GP, AVI, Matroska/WebM, MPEG-PS, MPEG-TS, FLV, Ogg, ASF/WMV."""
    if head[4:8] == b"ftyp":
        return head[8:12] not in _IMAGE_BRANDS
    return (
        (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[:4] in (b"\x1aE\xdf\xa3", b"\x00\x00\x01\xba", b"OggS", b"\x30\x26\xb2\x75")
        or head[:3] == b"FLV"
        or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)
    )


def split_videos(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """(videos, everything else) among command-line items, each in the order given.

    A stream URL is a video; a file is one by ``looks_like_video``; a glob's matches are
    split likewise; a folder contributes its videos (by extension) and stays with the
    images only if it holds any, so an image-less folder of videos is not reported as
    matching nothing.
    """
    videos: list[str] = []
    others: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file())
            found = [str(p) for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
            videos += found
            if not found or any(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
                others.append(item)
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item) if Path(p).is_file())
            found = [p for p in matches if looks_like_video(p)]
            videos += found
            others += [p for p in matches if p not in found]
            if not matches:
                others.append(item)  # the image path reports "no files match"
        elif is_stream_url(item) or looks_like_video(item):
            videos.append(item)
        else:
            others.append(item)
    return videos, others


@dataclass(frozen=True)
class OpenConfig:
    """How long FFmpeg may try to connect to or read from a stream; decoder threads."""

    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    decode_threads: int | None = None  # None: OpenCV's choice (the CPU count)


class VideoSource:
    """An opened source: ``info`` and the frames it decodes (call ``frames`` on one thread)."""

    def __init__(
        self,
        location: str | int | Path,
        live: bool | None = None,
        settings: OpenConfig = OpenConfig(),
    ) -> None:
        self.capture, self.camera, info = _open(location, settings)
        self.info = info if live is None else replace(info, live=live)
        self._camera_start: float | None = None
        # a file played as a live source keeps its own pace (frames at their timestamps)
        self.paced = self.info.live and not self.camera and not is_stream_url(str(location))

    def frames(self, selection: FrameSelectionConfig, stop: threading.Event, status: ReadStatus):
        """Decoded frames that ``selection`` keeps, until the source ends or ``stop`` is set;
        ``status`` is updated as it goes (read it from another thread only for display)."""
        index, first_kept, origin, last_time = -1, None, 0.0, 0.0
        max_frames = None if self.info.live else selection.max_frames  # live: the caller's
        while not stop.is_set():
            if not self.capture.grab():
                self._ended(status, index + 1, last_time)
                return
            index += 1
            status.decoded += 1
            timestamp = self._timestamp()
            last_time = timestamp
            if timestamp < selection.start:
                continue
            if selection.end is not None and timestamp >= selection.end:
                status.finished = "end time"
                return
            if first_kept is None:  # a paced file plays from here at its own rate
                first_kept, origin = index, time.monotonic() - timestamp
            if (index - first_kept) % selection.stride:
                continue
            ok, image = self.capture.retrieve()
            if not ok or image is None:
                status.errors.append(f"frame {index} ({timestamp:.3f} s) could not be converted")
                continue
            if self.paced and stop.wait(max(0.0, origin + timestamp - time.monotonic())):
                break
            status.kept += 1
            yield Frame(index, timestamp, image)
            if max_frames is not None and status.kept >= max_frames:
                status.finished = "max frames"
                return
        status.finished = status.finished or "stopped"

    def _timestamp(self) -> float:
        if self.camera:  # a camera's own clock varies by driver: seconds since its first frame
            now = time.monotonic()
            if self._camera_start is None:
                self._camera_start = now
            return now - self._camera_start
        return self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0

    def _ended(self, status: ReadStatus, decoded: int, last_time: float) -> None:
        """Why decoding stopped: the end of a file, or a file cut short, or a lost stream."""
        info = self.info
        status.finished = "end"
        if info.live and not self.paced:
            status.finished = "lost"
            status.errors.append(
                f"the stream stopped sending frames after {decoded} (ended, or the connection "
                "was lost)"
            )
        elif info.frame_count and decoded < info.frame_count:
            status.finished = "truncated"
            declared = f"{info.frame_count} frames"
            if info.fps > 0:
                declared += f", {info.frame_count / info.fps:.2f} s"
            status.errors.append(
                f"only {decoded} of the {declared} the container declares could be decoded "
                f"(the last at {last_time:.3f} s): the file is truncated or corrupt; the "
                "decoded frames were used (the one before a cut may be incomplete)"
            )
        elif decoded == 0:
            status.errors.append("no frame could be decoded")

    def close(self) -> None:
        self.capture.release()


def _open(
    location: str | int | Path, settings: OpenConfig
) -> tuple[cv2.VideoCapture, bool, SourceInfo]:
    """Open ``location`` (camera index, URL or file), or raise SourceError with the reason."""
    index = camera_index(location)
    text = str(location)
    params: list[int] = []
    if settings.decode_threads is not None:
        params += [cv2.CAP_PROP_N_THREADS, settings.decode_threads]
    if index is not None:
        capture = cv2.VideoCapture(index, cv2.CAP_ANY, params)
        name, live = f"camera {index}", True
        reason = "no camera at this index, or it is in use"
    elif is_stream_url(text):
        params += [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(settings.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(settings.read_timeout_s * 1000),
        ]
        capture = cv2.VideoCapture(text, cv2.CAP_FFMPEG, params)
        name, live = text, True
        reason = (
            f"FFmpeg could not connect, or found no video stream, within "
            f"{settings.open_timeout_s:g} s"
        )
    else:
        path = Path(text)
        if not path.exists():
            raise SourceError(text, "no such file")
        if path.is_dir():
            raise SourceError(text, "is a directory")
        capture = cv2.VideoCapture(text, cv2.CAP_FFMPEG, params)
        name, live = text, False
        reason = _file_reason(path)
    if not capture.isOpened():
        capture.release()
        raise SourceError(name, reason)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    info = SourceInfo(
        location=name,
        live=live,
        fps=fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0,
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        frame_count=count if count > 0 else None,
    )
    return capture, index is not None, info


def _file_reason(path: Path) -> str:
    """Why FFmpeg may refuse an existing file, as far as its first bytes tell."""
    try:
        with path.open("rb") as handle:
            head = handle.read(192)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not head:
        return "empty file"
    if head[4:8] == b"ftyp" and not _has_top_level_box(path, b"moov"):
        return (
            "an MP4/MOV file without its index (no 'moov' box): cut short while it was being "
            "written or copied; it cannot be decoded"
        )
    if not _video_signature(head):
        return "not a video FFmpeg can read"
    return "FFmpeg cannot decode a video stream from it (corrupt, or no video track)"


def _has_top_level_box(path: Path, kind: bytes) -> bool:
    """Whether an ISO-BMFF file has a complete top-level box of ``kind`` (box headers only)."""
    size_left = path.stat().st_size
    with path.open("rb") as handle:
        position = 0
        while position + 8 <= size_left:
            handle.seek(position)
            header = handle.read(16)
            size, box = int.from_bytes(header[:4], "big"), header[4:8]
            if size == 1 and len(header) == 16:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                size = size_left - position
            if size < 8:
                return False
            if box == kind:
                return position + size <= size_left
            position += size
    return False


class FrameReader:
    """Decodes a source on its own thread, ahead of the engine, into a bounded queue.

    Iterate it (from one consumer thread) for the frames. A file's reader waits while the
    queue is full; with ``drop_oldest`` (live sources) the oldest waiting frame is dropped
    instead and counted in ``status.dropped``. ``stop()`` ends reading but lets the
    consumer take what is queued (a graceful end); ``close()`` abandons the rest.
    """

    def __init__(
        self,
        source: VideoSource,
        selection: FrameSelectionConfig = FrameSelectionConfig(),
        queue_size: int = 4,
        drop_oldest: bool | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.selection = selection
        self.queue_size = max(1, queue_size)
        self.drop_oldest = source.info.live if drop_oldest is None else drop_oldest
        self.status = ReadStatus()
        self._stop = stop or threading.Event()
        self._frames: deque[Frame] = deque()
        self._ready = threading.Condition()
        self._done = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="centernet-video", daemon=True)

    def start(self) -> FrameReader:
        self._thread.start()
        return self

    def __enter__(self) -> FrameReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Stop reading; frames already queued are still handed out."""
        self._stop.set()

    def close(self, timeout: float | None = None) -> None:
        """Stop reading, drop what is queued, wait for the thread, release the source."""
        self._stop.set()
        with self._ready:
            self._closed = True
            self._frames.clear()
            self._ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.source.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._ready:
                while not self._frames and not self._done and not self._closed:
                    self._ready.wait(0.1)
                if self._closed:
                    return
                if not self._frames:  # done and drained
                    break
                frame = self._frames.popleft()
                self._ready.notify_all()
            yield frame
        if self._error is not None:
            raise self._error

    def _read(self) -> None:
        try:
            for frame in self.source.frames(self.selection, self._stop, self.status):
                if not self._put(frame):
                    self.status.finished = self.status.finished or "stopped"
                    break
        except BaseException as exc:  # re-raised in the consumer
            self._error = exc
        finally:
            with self._ready:
                self._done = True
                self._ready.notify_all()

    def _put(self, frame: Frame) -> bool:
        with self._ready:
            if self.drop_oldest:
                if len(self._frames) >= self.queue_size:
                    self._frames.popleft()
                    self.status.dropped += 1
            else:
                while len(self._frames) >= self.queue_size and not self._closed:
                    if self._stop.is_set():  # a graceful stop does not wait for room
                        return False
                    self._ready.wait(0.1)
            if self._closed:
                return False
            self._frames.append(frame)
            self._ready.notify_all()
        return True
