"""What the Detector's threads hand each other, and the one interface both pipelines
implement: ``prepare`` (read one image), ``assemble`` (a batch), ``run`` (the engine),
``to_detections`` (outputs to boxes). The host stages (``host.py``) do the work with
OpenCV and numpy; the device stages (``device/stages.py``) with torch on the engine's
device. Fronts that batch for themselves (the server) call the stages directly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from centernet.errors import CenterNetError, ImageReadError
from centernet.runtime.images import check_encoded, decode_image, read_file, to_bgr8
from centernet.runtime.postprocess import PostprocessConfig
from centernet.runtime.profiling import NO_PROFILE, Clock
from centernet.types import Detections, Letterbox

#: A file path, a decoded image (BGR, grey or BGRA array), or an encoded file in memory.
ImageSource = str | Path | np.ndarray | bytes

PIPELINES = ("host", "device")


def device_pipeline_refusal(engine_name: str) -> CenterNetError:
    """Why a model that is not run by torch cannot use the device pipeline, in one line."""
    return CenterNetError(
        "the device pipeline runs a torch network: give a .pth checkpoint (torch engine); "
        f'this model is run by the {engine_name} engine, use `pipeline="host"` for it'
    )


@dataclass
class DetectionResult:
    """One input's outcome: detections, or the reason it could not be read."""

    index: int
    source: str  # the path, or "<array i>" / "<bytes i>" for an in-memory image
    detections: Detections | None = None
    image: np.ndarray | None = None  # the decoded BGR image (for drawing), when read
    error: str | None = None
    # what was wrong, for fronts that answer differently per kind (a server: 413 vs 400)
    exception: Exception | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class PreparedImage:
    """A read and pre-processed image waiting for the engine (or its failure)."""

    result: DetectionResult
    tensor: np.ndarray | None = None  # (3, H, W) float32
    box: Letterbox | None = None
    # device pipeline: the encoded JPEG its device decodes, or the BGR image decoded here
    payload: bytes | np.ndarray | None = field(default=None, repr=False)
    done: Future | None = field(default=None, repr=False)  # set once its batch is submitted


class Stages(Protocol):
    """A pipeline's four stages; the Detector runs them in its threads."""

    engine: Any

    def prepare(
        self, source: ImageSource, index: int = 0, clock: Clock = NO_PROFILE,
        name: str | None = None,
    ) -> PreparedImage: ...  # fmt: skip

    def assemble(self, members: Sequence[PreparedImage], clock: Clock = NO_PROFILE) -> Any: ...

    def run(self, batch: Any) -> Any: ...

    def to_detections(
        self, outputs: Any, boxes: Sequence[Letterbox], config: PostprocessConfig | None = None
    ) -> list[Detections]: ...


def source_name(source: ImageSource, index: int) -> str:
    """How messages name a source: its path, or "<array i>" / "<bytes i>" in memory."""
    if isinstance(source, (str, Path)):
        return str(source)
    return f"<{'array' if isinstance(source, np.ndarray) else 'bytes'} {index}>"


def read_source(
    source: ImageSource,
    index: int,
    name: str | None,
    max_pixels: int | None,
    clock: Clock = NO_PROFILE,
    keep_encoded: Callable[[bytes], bool] | None = None,
) -> tuple[DetectionResult, bytes | None]:
    """The reading both pipelines share: a result with the decoded BGR image, or with the
    reason it cannot be read (never raises for a bad image). Bytes ``keep_encoded``
    accepts are checked as the host would and returned still encoded."""
    result = DetectionResult(index, name or source_name(source, index))
    try:
        if isinstance(source, np.ndarray):
            result.image = to_bgr8(source)
            return result, None
        if isinstance(source, bytes):
            data = source
        else:
            with clock.timed("read file"):
                data = read_file(source)
        if keep_encoded is not None and keep_encoded(data):
            check_encoded(data, result.source, max_pixels)  # the host's checks first
            return result, data
        with clock.timed("decode image"):
            result.image = decode_image(data, result.source, max_pixels)
    except ImageReadError as exc:
        result.error, result.exception = exc.reason, exc
    except ValueError as exc:
        result.error, result.exception = str(exc), exc
    return result, None
