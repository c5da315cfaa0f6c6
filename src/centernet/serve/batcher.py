"""Dynamic batching: images from concurrent requests run together on the engine.

The Triton / Ray Serve model. One engine thread takes the oldest waiting image, then
whatever else arrives within ``max_delay_s`` of it, up to ``max_batch`` images; a backlog
is taken at once. The batch runs on the Detector's engine while the next requests are
decoded and pre-processed in other threads; a decoder thread turns the outputs into each
request's Detections (each with its own threshold and max_dets) and wakes its waiter on
the event loop. ``max_queue`` bounds the images admitted and not yet in a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from centernet.errors import CenterNetError
from centernet.runtime.detector import Detector, PreparedImage
from centernet.runtime.postprocess import PostprocessConfig
from centernet.serve.config import BatchConfig
from centernet.serve.metrics import ServerMetrics
from centernet.types import Detections


class QueueFullError(CenterNetError):
    """More images waiting than ``max_queue``: the client should retry later (503)."""


@dataclass(frozen=True)
class ImageResult:
    """One image's answer: its boxes and the size they refer to."""

    detections: Detections
    width: int
    height: int


@dataclass(eq=False)
class Job:
    """One pre-processed image waiting for the engine, and where its answer goes."""

    prepared: PreparedImage
    config: PostprocessConfig
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    taken: bool = False  # in a batch (set by the engine thread)
    abandoned: bool = False  # its request gave up (timeout, disconnect): skip it


class DynamicBatcher:
    """Runs Jobs in batches on ``detector``'s engine; start() before submit()."""

    def __init__(self, detector: Detector, settings: BatchConfig, metrics: ServerMetrics) -> None:
        self.detector = detector
        self.settings = settings
        self.metrics = metrics
        # a static-batch build runs its own batch size (shorter batches are padded)
        self.max_batch = detector.engine.batch_size or settings.max_batch
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0  # admitted images not yet taken into a batch
        self._stop = threading.Event()
        self._post = ThreadPoolExecutor(1, thread_name_prefix="centernet-post")
        self._thread = threading.Thread(target=self._run, name="centernet-engine", daemon=True)

    # -- admission -------------------------------------------------------------------------

    def admit(self, count: int) -> None:
        """Reserve room for ``count`` images, or raise QueueFullError at once."""
        with self._lock:
            if self._waiting + count > self.settings.max_queue:
                raise QueueFullError(
                    f"server busy: {self._waiting} images waiting, the queue holds "
                    f"{self.settings.max_queue} (--max-queue); retry later"
                )
            self._waiting += count
            self.metrics.queued_images.set(self._waiting)

    def release(self, count: int, jobs: Sequence[Job]) -> None:
        """A request is over: give back the room of its images not taken into a batch
        (``count`` admitted, ``jobs`` the ones submitted), and abandon those jobs."""
        with self._lock:
            taken = 0
            for job in jobs:
                taken += job.taken
                job.abandoned = True
            self._waiting -= count - taken
            self.metrics.queued_images.set(self._waiting)

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    # -- the engine thread ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the engine thread; jobs still queued are answered with an error."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._post.shutdown(wait=True)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            _answer(job, CenterNetError("the server is shutting down"))

    def warm_up(self) -> None:
        """Run the engine once at batch 1 and at the largest batch, so the first requests
        do not pay for lazy initialisation."""
        height, width = self.detector.spec.input_size
        sizes = sorted({self.detector.engine.batch_size or 1, self.max_batch})
        for rows in sizes:
            self.detector.engine(np.zeros((rows, 3, height, width), dtype=np.float32))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._jobs.get(timeout=0.05)
            except queue.Empty:
                continue
            jobs = self._claim(self._collect(first))
            if jobs:
                self._run_batch(jobs)

    def _collect(self, first: Job) -> list[Job]:
        """``first`` and what arrives within max_delay of its arrival, up to max_batch."""
        jobs = [first]
        deadline = first.enqueued + self.settings.max_delay_s
        while len(jobs) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                job = (
                    self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
                )
            except queue.Empty:
                break
            jobs.append(job)
        return jobs

    def _claim(self, jobs: list[Job]) -> list[Job]:
        """The jobs whose requests still wait, marked taken (their queue room freed)."""
        now = time.perf_counter()
        with self._lock:
            live = [job for job in jobs if not job.abandoned]
            for job in live:
                job.taken = True
            self._waiting -= len(live)
            self.metrics.queued_images.set(self._waiting)
        for job in live:
            self.metrics.queue_seconds.observe(now - job.enqueued)
        return live

    def _run_batch(self, jobs: list[Job]) -> None:
        try:
            stages = self.detector.stages
            batch = stages.assemble([job.prepared for job in jobs])
            # the device pipeline decodes JPEGs here: one it cannot decode fails alone
            for job in jobs:
                if not job.prepared.result.ok:
                    _answer(job, UndecodableImageError(job.prepared.result))
            jobs = [job for job in jobs if job.prepared.result.ok]
            if not jobs:
                return
            started = time.perf_counter()
            outputs = stages.run(batch)
            self.metrics.inference_seconds.observe(time.perf_counter() - started)
            self.metrics.batch_size.observe(len(jobs))
        except Exception as exc:  # an engine failure fails this batch's requests only
            for job in jobs:
                _answer(job, CenterNetError(f"the engine failed: {exc}"))
            return
        self._post.submit(self._to_detections, outputs, jobs)

    def _to_detections(self, outputs: Any, jobs: list[Job]) -> None:
        """Each job's Detections, rows grouped by their request's threshold and max_dets."""
        try:
            groups: dict[PostprocessConfig, list[int]] = defaultdict(list)
            for row, job in enumerate(jobs):
                groups[job.config].append(row)
            for config, rows in groups.items():
                if rows == list(range(len(rows))):
                    part = outputs  # the leading rows: no copy
                elif isinstance(outputs, dict):  # the host pipeline's maps
                    part = {name: value[rows] for name, value in outputs.items()}
                else:  # the device pipeline's K boxes per row
                    part = outputs.take(rows)
                boxes = [jobs[row].prepared.box for row in rows]
                found = self.detector.stages.to_detections(part, boxes, config)
                for row, detections, box in zip(rows, found, boxes):
                    width, height = box.original_size  # (the device keeps no host image)
                    _answer(jobs[row], ImageResult(detections, width, height))
        except Exception as exc:
            for job in jobs:
                _answer(job, CenterNetError(f"decoding the outputs failed: {exc}"))


class UndecodableImageError(CenterNetError):
    """An image of a request that could not be decoded when its batch was formed (the
    device pipeline decodes there); the service answers it as a bad image."""

    def __init__(self, result) -> None:
        super().__init__(result.error or "the image could not be decoded")
        self.index = result.index
        self.exception = result.exception


def _answer(job: Job, outcome: ImageResult | BaseException) -> None:
    """Hand ``outcome`` to the job's waiter on its event loop (thread-safe)."""

    def settle() -> None:
        if job.future.done():
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        job.loop.call_soon_threadsafe(settle)
