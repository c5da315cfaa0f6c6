"""Detector: images or paths in, Detections out; the one entry point the CLI and users call.

``Detector.stream`` is a pipeline that keeps the engine busy:

1. reader threads read, decode and pre-process images ahead of the engine (OpenCV
   releases the GIL), at most ``prefetch`` images in flight;
2. a batching thread assembles the next batch while the engine runs the current one;
3. an engine thread does nothing but run the engine, so it never waits on host work;
4. a post-processing thread decodes the previous batch while the engine runs the next;
5. the caller receives results from a bounded queue, so its own work on a result
   (writing JSON, drawing) overlaps the engine instead of delaying it.

Results come out in input order. A file that cannot be read becomes a failed result in
its place; it never stalls or ends the stream. ``profile`` tells where the time went.

``pipeline="device"`` keeps the same threads and order but moves decoding, the warp, the
network and the peak search onto the torch engine's device (``device.py``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from centernet.engines import Engine, EngineOptions, open_engine
from centernet.errors import CenterNetError, ImageReadError
from centernet.images import DEFAULT_MAX_PIXELS, check_encoded, decode_image, read_file, to_bgr8
from centernet.postprocess import PostprocessConfig, postprocess
from centernet.preprocess import PreprocessConfig, keep_res_pad, preprocess_into
from centernet.profiling import NO_PROFILE, Clock, StageProfile
from centernet.types import Detections, Letterbox, ModelSpec

if TYPE_CHECKING:  # torch only for the device pipeline: never imported by the host one
    from centernet.device import DeviceBatch, DevicePipeline

#: A file path, a decoded image (BGR, grey or BGRA array), or an encoded file in memory.
ImageSource = str | Path | np.ndarray | bytes

PIPELINES = ("host", "device")


def device_pipeline_refusal(engine_name: str) -> CenterNetError:
    """Why a model that is not run by torch cannot use the device pipeline, in one line."""
    return CenterNetError(
        "the device pipeline runs a torch network: give a .pth checkpoint (torch engine); "
        f"this model is run by the {engine_name} engine, use --pipeline host for it"
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


class Detector:
    """Run a CenterNet model file on images.

    ``model`` is a .onnx export or a .pth checkpoint (or an already open Engine).
    ``detector(image)`` takes an ndarray (BGR, grey or BGRA; uint8 or uint16) or a path and
    returns Detections; ``detector([a, b])`` returns a list. ``stream`` never raises for a
    bad file: it yields a failed DetectionResult in its place and goes on.
    ``pipeline="device"`` (torch engine only) pre- and post-processes on the engine's
    device; a result's ``image`` is then set only for images decoded on the host.
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
        pipeline: str = "host",
    ) -> None:
        if pipeline not in PIPELINES:
            raise CenterNetError(f"unknown pipeline {pipeline!r}; choose {' or '.join(PIPELINES)}")
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
        self.pipeline = pipeline
        self.device_pipeline: DevicePipeline | None = None  # the device stages, if asked for
        if pipeline == "device":  # torch only here: the host pipeline never imports it
            if self.engine.name != "torch":
                raise device_pipeline_refusal(self.engine.name)
            from centernet.device import DevicePipeline

            self.device_pipeline = DevicePipeline(
                self.engine, self.preprocess_config, max_dets, self.batch_size, max_pixels
            )

    @property
    def spec(self) -> ModelSpec:
        return self.engine.spec

    def __call__(
        self, images: ImageSource | Sequence[ImageSource]
    ) -> Detections | list[Detections]:
        single = isinstance(images, (str, Path, np.ndarray, bytes))
        results = list(self.stream([images] if single else images))  # type: ignore[list-item]
        for result in results:
            if not result.ok:
                raise ImageReadError(result.source, result.error or "unreadable")
        detections = [r.detections for r in results]
        return detections[0] if single else detections  # type: ignore[return-value]

    def stream(
        self, sources: Iterable[ImageSource], profile: StageProfile | None = None
    ) -> Iterator[DetectionResult]:
        """Detect on each source, in order, through the read / batch / engine / decode
        pipeline.

        Batches are assembled in their own thread and the engine runs in another, so the
        engine thread does nothing but run the engine, and whatever the caller does with
        a result (writing JSON, drawing) overlaps the next batch. ``profile`` records
        where the time goes. Leaving the loop early stops every thread before returning.
        """
        clock = profile or NO_PROFILE
        units: queue.Queue = queue.Queue(maxsize=1)  # one batch ready ahead of the engine
        results: queue.Queue = queue.Queue(maxsize=self.prefetch + 2 * self.batch_size)
        stop = threading.Event()
        started, yielded = time.perf_counter(), 0
        with (
            ThreadPoolExecutor(self.readers, thread_name_prefix="centernet-read") as readers,
            ThreadPoolExecutor(1, thread_name_prefix="centernet-post") as decoder,
        ):
            threads = [
                threading.Thread(
                    target=self._batch_up,
                    args=(sources, readers, units, stop, clock),
                    name="centernet-batch",
                    daemon=True,
                ),
                threading.Thread(
                    target=self._run_engine,
                    args=(units, decoder, results, stop, clock),
                    name="centernet-engine",
                    daemon=True,
                ),
            ]
            for thread in threads:
                thread.start()
            try:
                while True:
                    waited = time.perf_counter()
                    item = results.get()
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if item.done is not None:
                        item.done.result()  # its batch decoded (re-raises a decoding failure)
                    handed = time.perf_counter()
                    clock.add("wait for results", handed - waited)
                    yielded += 1
                    yield item.result
                    clock.add("caller's own work", time.perf_counter() - handed)
            finally:
                stop.set()  # the threads poll it while they wait to hand something on
                for thread in threads:
                    thread.join()
                readers.shutdown(wait=True, cancel_futures=True)
                if profile is not None:
                    profile.wall += time.perf_counter() - started
                    profile.images += yielded

    def _batch_up(
        self,
        sources: Iterable[ImageSource],
        readers: ThreadPoolExecutor,
        units: queue.Queue,
        stop: threading.Event,
        clock: Clock,
    ) -> None:
        """The batching thread: prepared images in input order -> batches for the engine,
        each with the inputs (failures included) to hand on once it has run."""
        try:
            pending: list[PreparedImage] = []  # every input since the last unit, in order
            members: list[PreparedImage] = []  # the readable ones among them: the batch rows
            for future in self._read_ahead(readers, sources, stop, clock):
                with clock.timed("wait for input"):
                    item = future.result()
                pending.append(item)
                if item.result.ok:
                    members.append(item)
                full = len(members) == self.batch_size or (
                    members and self.preprocess_config.keep_res
                )
                if full or not members:  # a batch, or failures with no batch to wait for
                    if not _put(units, self._unit(members, pending, clock), stop):
                        return
                    pending, members = [], []
            if pending and not _put(units, self._unit(members, pending, clock), stop):
                return
            _put(units, _END, stop)
        except BaseException as exc:  # the caller re-raises it in its own thread
            _put(units, exc, stop)

    def _unit(
        self, members: list[PreparedImage], items: list[PreparedImage], clock: Clock
    ) -> _Unit:
        """A batch of ``members`` (padded to a static batch size) and the inputs to hand on."""
        if not members:
            return _Unit(None, [], list(items))
        batch = self.make_batch(members, clock)
        readable = [m for m in members if m.result.ok]  # the device may fail to decode some
        return _Unit(batch if readable else None, readable, list(items))

    def make_batch(
        self, members: Sequence[PreparedImage], clock: Clock = NO_PROFILE
    ) -> np.ndarray | DeviceBatch | None:
        """The engine's input for ``members``: their tensors stacked, padded with zero rows
        to the engine's static batch size. Frees each member's tensor (the batch holds it).

        With the device pipeline: the decoded, warped batch on the device (a DeviceBatch);
        a member that cannot be decoded there has its failure recorded in its result.
        """
        if self.device_pipeline is not None:
            with clock.timed("device decode + pre-process"):
                return self.device_pipeline.assemble(members)
        rows = self.engine.batch_size or len(members)
        first = members[0].tensor
        assert first is not None
        with clock.timed("batch assembly"):
            if rows == 1:
                batch = first[None]  # one image: its tensor is the batch, no copy
            else:
                batch = np.empty((rows, *first.shape), dtype=np.float32)
                for row, item in enumerate(members):
                    batch[row] = item.tensor
                batch[len(members) :] = 0.0  # padding rows of a static batch
            for item in members:
                item.tensor = None
        return batch

    def _run_engine(
        self,
        units: queue.Queue,
        decoder: ThreadPoolExecutor,
        results: queue.Queue,
        stop: threading.Event,
        clock: Clock,
    ) -> None:
        """The engine thread: runs each batch, queues its decoding, hands its inputs on."""
        try:
            while True:
                with clock.timed("wait for batch"):
                    unit = _get(units, stop)
                if unit is None:  # the caller stopped listening
                    return
                if unit is _END or isinstance(unit, BaseException):
                    _put(results, unit, stop)
                    return
                if unit.batch is not None:
                    with clock.timed("engine"):
                        outputs = self._run(unit.batch)
                    done = decoder.submit(self._decode, outputs, unit.members, clock)
                    for member in unit.members:
                        member.done = done
                for item in unit.items:
                    if not _put(results, item, stop):
                        return
        except BaseException as exc:
            _put(results, exc, stop)

    def _run(self, batch):
        """The engine on a batch; with the device pipeline, the network and the peak search
        on the device (K boxes per image come back)."""
        if self.device_pipeline is None:
            return self.engine(batch)
        return self.device_pipeline.run(batch)

    def _read_ahead(
        self,
        pool: ThreadPoolExecutor,
        sources: Iterable[ImageSource],
        stop: threading.Event,
        clock: Clock,
    ) -> Iterator[Future]:
        """Futures of prepared images in input order, at most ``prefetch`` in flight."""
        in_flight: deque[Future] = deque()
        try:
            for index, source in enumerate(sources):
                if stop.is_set():
                    return
                in_flight.append(pool.submit(self.prepare, index=index, source=source, clock=clock))
                if len(in_flight) >= self.prefetch:
                    yield in_flight.popleft()
            while in_flight and not stop.is_set():
                yield in_flight.popleft()
        finally:  # stopped early: images not yet started are not read
            for future in in_flight:
                future.cancel()

    def prepare(
        self,
        source: ImageSource,
        index: int = 0,
        clock: Clock = NO_PROFILE,
        name: str | None = None,
    ) -> PreparedImage:
        """Read (or convert) and pre-process one image: the first stage of every front.

        Never raises for a bad image: the failure is in the result (reason and exception).
        ``name`` labels an in-memory source in messages (default "<array i>"/"<bytes i>").
        """
        if name is None:
            kind = "array" if isinstance(source, np.ndarray) else "bytes"
            name = str(source) if isinstance(source, (str, Path)) else f"<{kind} {index}>"
        result = DetectionResult(index, name)
        try:
            if isinstance(source, np.ndarray):
                result.image = to_bgr8(source)
            else:
                if isinstance(source, bytes):
                    data = source
                else:
                    with clock.timed("read file"):
                        data = read_file(source)
                if self.device_pipeline is not None and self.device_pipeline.takes_encoded(data):
                    check_encoded(data, name, self.max_pixels)  # the host's checks first
                    return PreparedImage(result, payload=data)
                with clock.timed("decode image"):
                    result.image = decode_image(data, name, self.max_pixels)
        except ImageReadError as exc:
            result.error, result.exception = exc.reason, exc
            return PreparedImage(result)
        except ValueError as exc:
            result.error, result.exception = str(exc), exc
            return PreparedImage(result)
        if self.device_pipeline is not None:  # warped on the device
            return PreparedImage(result, payload=result.image)
        with clock.timed("pre-process"):
            tensor, box = preprocess_into(result.image, self.preprocess_config)
        return PreparedImage(result, tensor, box)

    def decode(
        self,
        outputs: dict[str, np.ndarray],
        boxes: Sequence[Letterbox],
        config: PostprocessConfig | None = None,
    ) -> list[Detections]:
        """The engine's outputs for the first ``len(boxes)`` rows -> Detections per image,
        with this detector's threshold and max_dets unless ``config`` says otherwise.
        (With the device pipeline, ``outputs`` are its K boxes per image.)"""
        config = config or self.postprocess_config
        if self.device_pipeline is not None:
            return self.device_pipeline.detections(outputs, len(boxes), config)
        return postprocess(outputs, list(boxes), config)

    def _decode(
        self,
        outputs: dict[str, np.ndarray],
        items: list[PreparedImage],
        clock: Clock = NO_PROFILE,
    ) -> None:
        with clock.timed("post-process"):
            decoded = self.decode(outputs, [item.box for item in items])
        for item, detections in zip(items, decoded):
            item.result.detections = detections


@dataclass
class _Unit:
    """What the batching thread hands the engine thread: a batch of ``members`` (None when
    there are only failures) and every input since the last unit, to hand on in order."""

    batch: np.ndarray | DeviceBatch | None
    members: list[PreparedImage]
    items: list[PreparedImage]


_END = object()  # the last word of a stage: every input has been handed on


def _get(source: queue.Queue, stop: threading.Event) -> object | None:
    """The next item of ``source``, or None once the caller stops listening."""
    while not stop.is_set():
        try:
            return source.get(timeout=0.05)
        except queue.Empty:
            continue
    return None


def _put(results: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless the caller stops listening first (then False)."""
    while not stop.is_set():
        try:
            results.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
