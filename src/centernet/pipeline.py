"""Detector: images or paths in, Detections out; the one entry point the CLI and users call.

``Detector.stream`` is a three-stage pipeline that keeps the engine busy:

1. reader threads decode and pre-process images ahead of the engine (OpenCV releases
   the GIL), at most ``prefetch`` images in flight;
2. the calling thread assembles batches as images arrive and runs the engine;
3. a post-processing thread decodes the previous batch while the engine runs the next.

Results come out in input order. A file that cannot be read becomes a failed result in
its place; it never stalls or ends the stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from centernet.engines import Engine, EngineOptions, open_engine
from centernet.errors import CenterNetError, ImageReadError
from centernet.images import DEFAULT_MAX_PIXELS, read_image, to_bgr8
from centernet.postprocess import PostprocessConfig, postprocess
from centernet.preprocess import PreprocessConfig, keep_res_pad, preprocess_into
from centernet.types import Detections, Letterbox, ModelSpec

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


@dataclass
class _Prepared:
    """A read and pre-processed image waiting for the engine (or its failure)."""

    result: DetectionResult
    tensor: np.ndarray | None = None  # (3, H, W) float32
    box: Letterbox | None = None
    done: Future | None = field(default=None, repr=False)  # set once its batch is submitted


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
        readers: int = 2,
        prefetch: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
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
        if spec.output_mode == "topk" and max_dets > spec.max_objects:
            raise CenterNetError(
                f"this model's graph keeps the top {spec.max_objects} boxes; max_dets {max_dets} "
                "needs a re-export"
            )
        self.batch_size = fixed or batch_size or 1
        self.max_pixels = max_pixels  # larger files are refused before decoding
        self.readers = max(1, readers)
        self.prefetch = prefetch or 2 * self.batch_size + self.readers
        self.preprocess_config = PreprocessConfig(
            input_size=spec.input_size,
            keep_res=keep_res,
            mean=spec.mean,
            std=spec.std,
            down_ratio=spec.down_ratio,
            pad=keep_res_pad(spec.arch),
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
        """Detect on each source, in order, through the read / engine / decode pipeline."""
        with (
            ThreadPoolExecutor(self.readers, thread_name_prefix="centernet-read") as readers,
            ThreadPoolExecutor(1, thread_name_prefix="centernet-post") as decoder,
        ):
            waiting: deque[_Prepared] = deque()  # every input, in order, until yielded
            batch: list[_Prepared] = []
            for future in self._read_ahead(readers, sources):
                item = future.result()
                waiting.append(item)
                if item.result.ok:
                    batch.append(item)
                    if len(batch) == self.batch_size or self.preprocess_config.keep_res:
                        self._submit(batch, decoder)
                        batch = []
                yield from self._finished(waiting, block=False)
            if batch:
                self._submit(batch, decoder)
            yield from self._finished(waiting, block=True)

    def _read_ahead(
        self, pool: ThreadPoolExecutor, sources: Iterable[ImageSource]
    ) -> Iterator[Future]:
        """Futures of prepared images in input order, at most ``prefetch`` in flight."""
        in_flight: deque[Future] = deque()
        for index, source in enumerate(sources):
            in_flight.append(pool.submit(self._prepare, index, source))
            if len(in_flight) >= self.prefetch:
                yield in_flight.popleft()
        while in_flight:
            yield in_flight.popleft()

    def _prepare(self, index: int, source: ImageSource) -> _Prepared:
        """Read (or convert) and pre-process one image; failures become an error result."""
        name = f"<array {index}>" if isinstance(source, np.ndarray) else str(source)
        result = DetectionResult(index, name)
        try:
            result.image = (
                to_bgr8(source)
                if isinstance(source, np.ndarray)
                else read_image(source, self.max_pixels)
            )
        except ImageReadError as exc:
            result.error = exc.reason
            return _Prepared(result)
        except ValueError as exc:
            result.error = str(exc)
            return _Prepared(result)
        tensor, box = preprocess_into(result.image, self.preprocess_config)
        return _Prepared(result, tensor, box)

    def _submit(self, items: list[_Prepared], decoder: ThreadPoolExecutor) -> None:
        """Run the engine on ``items`` (padding a short batch) and queue their decoding."""
        rows = self.engine.batch_size or len(items)
        first = items[0].tensor
        assert first is not None
        batch = np.zeros((rows, *first.shape), dtype=np.float32)
        for row, item in enumerate(items):
            batch[row] = item.tensor
            item.tensor = None  # free it: the batch holds the pixels now
        outputs = self.engine(batch)
        future = decoder.submit(self._decode, outputs, items)
        for item in items:
            item.done = future

    def _decode(self, outputs: dict[str, np.ndarray], items: list[_Prepared]) -> None:
        boxes = [item.box for item in items]
        for item, detections in zip(items, postprocess(outputs, boxes, self.postprocess_config)):
            item.result.detections = detections

    @staticmethod
    def _finished(waiting: deque[_Prepared], block: bool) -> Iterator[DetectionResult]:
        """Yield results from the front while they are complete (all of them if block)."""
        while waiting:
            head = waiting[0]
            if head.result.ok:
                if head.done is None:
                    if block:
                        raise RuntimeError("an image was never submitted")  # a bug, not input
                    return
                if not block and not head.done.done():
                    return
                head.done.result()  # re-raises a decoding failure
            yield waiting.popleft().result
