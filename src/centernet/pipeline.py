"""Detector: images or paths in, Detections out; the one entry point the CLI and users call."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centernet.engines import Engine, EngineOptions, open_engine
from centernet.errors import CenterNetError, ImageReadError
from centernet.images import read_image, to_bgr8
from centernet.postprocess import PostprocessConfig, postprocess
from centernet.preprocess import PreprocessConfig, make_letterbox, preprocess_into
from centernet.types import Detections, ModelSpec

ImageSource = str | Path | np.ndarray


@dataclass
class DetectionResult:
    """One input's outcome: detections, or the reason it could not be read."""

    index: int
    source: str  # the path, or "<array i>" for an in-memory image
    detections: Detections | None = None
    image: np.ndarray | None = None  # the decoded BGR image (for drawing), when read
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Detector:
    """Run a CenterNet model file on images.

    ``model`` is a .onnx export or a .pth checkpoint (or an already open Engine).
    ``detector(image)`` takes an ndarray (BGR, grey or BGRA; uint8 or uint16) or a path and
    returns Detections; ``detector([a, b])`` returns a list. ``stream`` never raises for a
    bad file: it yields a failed DetectionResult in its place and goes on.
    """

    def __init__(
        self,
        model: str | Path | Engine,
        engine: str = "auto",
        threshold: float = 0.0,
        max_dets: int = 100,
        batch_size: int | None = None,
        keep_res: bool = False,
        options: EngineOptions | None = None,
    ) -> None:
        self.engine: Engine = (
            model if isinstance(model, Engine) else open_engine(model, engine, options)
        )
        spec = self.engine.spec
        if keep_res and not spec.dynamic_size:
            raise CenterNetError(
                "--keep-res needs a model with a free input size; export it with --dynamic-size"
            )
        fixed = self.engine.batch_size
        if fixed is not None and batch_size not in (None, fixed):
            raise CenterNetError(f"this model was built for batch {fixed}; got batch {batch_size}")
        self.batch_size = fixed or batch_size or 1
        self.preprocess_config = PreprocessConfig(
            input_size=spec.input_size,
            keep_res=keep_res,
            mean=spec.mean,
            std=spec.std,
            down_ratio=spec.down_ratio,
        )
        self.postprocess_config = PostprocessConfig(max_dets=max_dets, threshold=threshold)

    @property
    def spec(self) -> ModelSpec:
        return self.engine.spec

    def __call__(
        self, images: ImageSource | Sequence[ImageSource]
    ) -> Detections | list[Detections]:
        single = isinstance(images, (str, Path, np.ndarray))
        results = list(self.stream([images] if single else images))  # type: ignore[list-item]
        for result in results:
            if not result.ok:
                raise ImageReadError(result.source, result.error or "unreadable")
        detections = [r.detections for r in results]
        return detections[0] if single else detections  # type: ignore[return-value]

    def stream(self, sources: Iterable[ImageSource]) -> Iterator[DetectionResult]:
        """Detect on each source in order, ``batch_size`` at a time; bad files yield errors."""
        chunk: list[DetectionResult] = []
        for index, source in enumerate(sources):
            chunk.append(self._load(index, source))
            if len(chunk) == self.batch_size:
                yield from self._run_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._run_chunk(chunk)

    def _load(self, index: int, source: ImageSource) -> DetectionResult:
        if isinstance(source, np.ndarray):
            result = DetectionResult(index, f"<array {index}>")
            try:
                result.image = to_bgr8(source)
            except ValueError as exc:
                result.error = str(exc)
            return result
        result = DetectionResult(index, str(source))
        try:
            result.image = read_image(source)
        except ImageReadError as exc:
            result.error = exc.reason
        return result

    def _run_chunk(self, chunk: list[DetectionResult]) -> list[DetectionResult]:
        readable = [r for r in chunk if r.ok]
        step = 1 if self.preprocess_config.keep_res else self.batch_size  # keep_res: own sizes
        for start in range(0, len(readable), step):
            self._infer(readable[start : start + step])
        return chunk

    def _infer(self, results: list[DetectionResult]) -> None:
        """Fill ``detections`` of up to batch_size read images, padding a short batch."""
        first = results[0].image
        assert first is not None
        box = make_letterbox(first.shape[1], first.shape[0], self.preprocess_config)
        width, height = box.input_size
        rows = self.engine.batch_size or len(results)
        batch = np.zeros((rows, 3, height, width), dtype=np.float32)
        boxes = []
        for row, result in enumerate(results):
            assert result.image is not None
            _, box = preprocess_into(result.image, self.preprocess_config, batch[row])
            boxes.append(box)
        outputs = self.engine(batch)
        for result, detections in zip(
            results, postprocess(outputs, boxes, self.postprocess_config)
        ):
            result.detections = detections
