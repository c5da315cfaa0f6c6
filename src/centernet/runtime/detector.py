"""Detector: images or paths in, Detections out; the one entry point the CLI and users call.

``Detector.stream`` is a pipeline that keeps the engine busy:

1. reader threads read, decode and pre-process images ahead of the engine (OpenCV
   releases the GIL), at most ``prefetch`` images in flight;
2. a batching thread assembles the next batch while the engine runs the current one;
3. an engine thread does nothing but run the engine, so it never waits on host work;
4. a post-processing thread turns the previous batch's outputs into boxes while the
   engine runs the next;
5. the caller receives results from a bounded queue, so its own work on a result
   (writing JSON, drawing) overlaps the engine instead of delaying it.

Results come out in input order. A file that cannot be read becomes a failed result in
its place; it never stalls or ends the stream. ``profile`` tells where the time went.

The work of each stage is the pipeline's ``Stages`` object, chosen once: ``HostStages``
(``host.py``), or with ``pipeline="device"`` the torch ``DeviceStages``
(``device/stages.py``), which decode, warp, run and find peaks on the engine's device.
The Detector only runs the threads.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from centernet.engines import Engine, EngineConfig, open_engine
from centernet.errors import CenterNetError, ImageReadError
from centernet.runtime.host import HostStages
from centernet.runtime.images import DEFAULT_MAX_PIXELS
from centernet.runtime.postprocess import PostprocessConfig
from centernet.runtime.preprocess import PreprocessConfig, keep_res_pad
from centernet.runtime.profiling import NO_PROFILE, Clock, StageProfile
from centernet.runtime.stages import (
    PIPELINES,
    DetectionResult,
    ImageSource,
    PreparedImage,
    Stages,
    device_pipeline_refusal,
)
from centernet.types import Detections, ModelSpec


@dataclass(frozen=True)
class DetectorConfig:
    """How a Detector runs a model. Fronts (CLI, server, Ray) build one of these rather
    than passing the same keyword arguments on."""

    engine: str = "auto"
    threshold: float = 0.0  # boxes scoring below are dropped
    max_dets: int = 100  # K: boxes per image
    batch_size: int | None = None  # None: the model's static batch, else 1
    keep_res: bool = False  # original resolution padded to 32 (needs --dynamic-size)
    options: EngineConfig | None = None
    readers: int = 2  # reader threads
    prefetch: int | None = None  # images read ahead; None: 2 * batch + readers
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # larger files are refused before decoding
    pipeline: str = "host"  # or "device": torch on the engine's device


#: The name before 0.2 (settings classes now all end in Config).
DetectorSettings = DetectorConfig


class Detector:
    """Run a CenterNet model file on images.

    ``model`` is a .onnx export or a .pth checkpoint (or an already open Engine);
    ``settings`` (a DetectorConfig) and keyword overrides of its fields say how.
    ``detector(image)`` takes an ndarray (BGR, grey or BGRA; uint8 or uint16) or a path and
    returns Detections; ``detector([a, b])`` returns a list. ``stream`` never raises for a
    bad file: it yields a failed DetectionResult in its place and goes on.
    ``pipeline="device"`` (torch engine only) pre- and post-processes on the engine's
    device; a result's ``image`` is then set only for images decoded on the host.
    """

    def __init__(
        self,
        model: str | Path | Engine,
        settings: DetectorConfig | None = None,
        **overrides: Any,
    ) -> None:
        settings = replace(settings or DetectorConfig(), **overrides)
        if settings.pipeline not in PIPELINES:
            raise CenterNetError(
                f"unknown pipeline {settings.pipeline!r}; choose {' or '.join(PIPELINES)}"
            )
        engine = (
            model
            if isinstance(model, Engine)
            else open_engine(model, settings.engine, settings.options)
        )
        spec = engine.spec
        if settings.keep_res and not spec.dynamic_size:
            raise CenterNetError(
                "`keep_res` needs a model with a free input size; export it with "
                "`dynamic_size`"
            )
        fixed = engine.batch_size
        if fixed is not None and settings.batch_size not in (None, fixed):
            raise CenterNetError(
                f"this model was built for batch {fixed}; got batch {settings.batch_size}"
            )
        if spec.output_mode == "topk" and settings.max_dets > spec.max_objects:
            raise CenterNetError(
                f"this model's graph keeps the top {spec.max_objects} boxes; max_dets "
                f"{settings.max_dets} needs a re-export"
            )
        self.settings = settings
        self.batch_size = fixed or settings.batch_size or 1
        self.readers = max(1, settings.readers)
        self.prefetch = settings.prefetch or 2 * self.batch_size + self.readers
        self.preprocess_config = PreprocessConfig(
            input_size=spec.input_size,
            keep_res=settings.keep_res,
            mean=spec.mean,
            std=spec.std,
            down_ratio=spec.down_ratio,
            pad=keep_res_pad(spec.arch),
        )
        self.postprocess_config = PostprocessConfig(
            max_dets=settings.max_dets, threshold=settings.threshold
        )
        self.pipeline = settings.pipeline
        self.stages: Stages
        if settings.pipeline == "device":  # torch only here: the host pipeline never imports it
            if engine.name != "torch":
                raise device_pipeline_refusal(engine.name)
            from centernet.runtime.device.stages import DeviceStages

            self.stages = DeviceStages(
                engine,
                self.preprocess_config,
                self.postprocess_config,
                self.batch_size,
                settings.max_pixels,
            )
        else:
            self.stages = HostStages(
                engine, self.preprocess_config, self.postprocess_config, settings.max_pixels
            )

    @property
    def engine(self) -> Engine:
        return self.stages.engine

    @engine.setter
    def engine(self, engine: Engine) -> None:  # tests wrap the engine (slow, failing)
        self.stages.engine = engine

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
        batch = self.stages.assemble(members, clock)
        readable = [m for m in members if m.result.ok]  # the device may fail to decode some
        return _Unit(batch if readable else None, readable, list(items))

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
                        outputs = self.stages.run(unit.batch)
                    done = decoder.submit(self._to_detections, outputs, unit.members, clock)
                    for member in unit.members:
                        member.done = done
                for item in unit.items:
                    if not _put(results, item, stop):
                        return
        except BaseException as exc:
            _put(results, exc, stop)

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
                in_flight.append(pool.submit(self.stages.prepare, source, index, clock))
                if len(in_flight) >= self.prefetch:
                    yield in_flight.popleft()
            while in_flight and not stop.is_set():
                yield in_flight.popleft()
        finally:  # stopped early: images not yet started are not read
            for future in in_flight:
                future.cancel()

    def _to_detections(
        self,
        outputs: Any,
        items: list[PreparedImage],
        clock: Clock = NO_PROFILE,
    ) -> None:
        with clock.timed("post-process"):
            found = self.stages.to_detections(outputs, [item.box for item in items])
        for item, detections in zip(items, found):
            item.result.detections = detections


@dataclass
class _Unit:
    """What the batching thread hands the engine thread: a batch of ``members`` (None when
    there are only failures) and every input since the last unit, to hand on in order."""

    batch: Any  # the stages' batch (a numpy array, or a DeviceBatch), or None
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
