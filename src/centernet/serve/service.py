"""DetectionService: encoded images in, one ImageResult per image out; transport-free.

It owns the model (a Detector: its engine, pre- and post-processing), the batcher and the
metrics, and holds each call to the limits: room in the queue (else QueueFullError), a
pixel limit per image, a deadline. The HTTP app maps its exceptions to status codes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from centernet.errors import CenterNetError, ImageTooLargeError
from centernet.runtime.detector import Detector
from centernet.runtime.postprocess import PostprocessConfig
from centernet.serve.batcher import (
    DynamicBatcher,
    ImageResult,
    Job,
    QueueFullError,
    UndecodableImageError,
)
from centernet.serve.config import ServeConfig
from centernet.serve.metrics import ServerMetrics
from centernet.types import ModelSpec

__all__ = [
    "BadImageError",
    "BadRequestError",
    "DetectionService",
    "QueueFullError",
    "RequestTimeoutError",
]


class BadRequestError(CenterNetError):
    """The request itself is wrong (parameters, format): 400, or ``status`` if given."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class BadImageError(BadRequestError):
    """One image of a request cannot be used: 413 when over the pixel limit, else 400."""

    def __init__(self, index: int, reason: str, too_large: bool) -> None:
        super().__init__(reason, 413 if too_large else 400)
        self.index = index


class RequestTimeoutError(CenterNetError):
    """Not answered within the server's timeout (504)."""


class DetectionService:
    """One model, batched across concurrent callers. ``start()`` before ``detect()``."""

    def __init__(
        self, config: ServeConfig, batcher_type: type[DynamicBatcher] = DynamicBatcher
    ) -> None:
        self.config = config
        self.name = config.model_name
        self.detector = Detector(config.model, config.detector_config())
        self.metrics = ServerMetrics()
        # the batching strategy: an engine thread here, Ray Serve's @serve.batch on Ray
        self.batcher = batcher_type(self.detector, config.batching, self.metrics)
        self._readers = ThreadPoolExecutor(config.readers, thread_name_prefix="centernet-read")
        self.ready = False

    @property
    def spec(self) -> ModelSpec:
        return self.detector.spec

    @property
    def engine_name(self) -> str:
        return self.detector.engine.name

    def start(self) -> None:
        """Warm the engine up, start the engine thread; then the service is ready."""
        self.batcher.warm_up()
        self.batcher.start()
        self.ready = True

    def close(self) -> None:
        self.ready = False
        self.batcher.close()
        self._readers.shutdown(wait=True, cancel_futures=True)

    def postprocess_config(
        self, threshold: float | None = None, max_dets: int | None = None
    ) -> PostprocessConfig:
        """A request's decode settings, checked; the server's defaults where not given."""
        threshold = self.config.threshold if threshold is None else threshold
        max_dets = self.config.max_dets if max_dets is None else max_dets
        if not 0.0 <= threshold <= 1.0:
            raise BadRequestError(f"threshold must be between 0 and 1, got {threshold}")
        limit = self.spec.max_objects if self.spec.output_mode == "topk" else 1000
        if not 1 <= max_dets <= limit:
            raise BadRequestError(f"max_dets must be between 1 and {limit}, got {max_dets}")
        return PostprocessConfig(max_dets=max_dets, threshold=threshold)

    async def detect(self, images: Sequence[bytes], config: PostprocessConfig) -> list[ImageResult]:
        """Detections for each encoded image, in order; all or nothing for the request.

        Raises QueueFullError (no room: nothing was done), BadImageError (the first image
        that cannot be decoded; no image of the request runs), RequestTimeoutError.
        """
        if len(images) > self.config.limits.max_images:
            raise BadRequestError(
                f"{len(images)} images in one request; the limit is "
                f"{self.config.limits.max_images}",
                status=413,
            )
        self.batcher.admit(len(images))
        jobs: list[Job] = []
        try:
            return await asyncio.wait_for(
                self._detect(images, config, jobs), self.config.limits.timeout_s
            )
        except asyncio.TimeoutError:
            raise RequestTimeoutError(
                f"not answered within {self.config.limits.timeout_s:g} s (--timeout-s)"
            ) from None
        finally:
            self.batcher.release(len(images), jobs)

    async def _detect(
        self, images: Sequence[bytes], config: PostprocessConfig, jobs: list[Job]
    ) -> list[ImageResult]:
        loop = asyncio.get_running_loop()
        prepared = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self._readers,
                    functools.partial(
                        self.detector.stages.prepare, data, index, name=f"image {index}"
                    ),
                )
                for index, data in enumerate(images)
            )
        )
        for item in prepared:
            if not item.result.ok:
                raise BadImageError(
                    item.result.index,
                    item.result.error or "unreadable",
                    isinstance(item.result.exception, ImageTooLargeError),
                )
        for item in prepared:
            job = Job(item, config, loop.create_future(), loop)
            jobs.append(job)
            self.batcher.submit(job)
        try:
            results = await asyncio.gather(*(job.future for job in jobs))
        except UndecodableImageError as exc:  # decoded with its batch (device pipeline)
            too_large = isinstance(exc.exception, ImageTooLargeError)
            raise BadImageError(exc.index, str(exc), too_large) from None
        self.metrics.images.inc(len(results))
        return list(results)
