"""Throughput and latency.

Network-only, like the vendor's ``mm_run``: a fixed random batch, warm-up runs, then
timed runs; images per second from the median batch latency, latency percentiles per
batch. End-to-end: wall time from image files to Detections through the pipelined
Detector (read, decode, pre-process, engine, post-process).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from centernet.engines import Engine
from centernet.pipeline import Detector


@dataclass(frozen=True)
class Timing:
    """Latency percentiles of one batch (ms) and the throughput they imply."""

    batch: int
    iterations: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def images_per_s(self) -> float:
        return self.batch * 1000.0 / self.p50_ms


def summarize(batch: int, seconds: list[float]) -> Timing:
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Timing(batch, len(ms), float(p50), float(p90), float(p99), float(ms.mean()))


def time_network(
    engine: Engine,
    batch: int,
    iterations: int = 20,
    warmup: int = 3,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Timing:
    """Time ``engine`` on a random (batch, 3, H, W) input of its spec's input size.

    ``progress(done, total)`` hears each run, warm-up included (outside the timed span).
    """
    height, width = engine.spec.input_size
    x = np.random.default_rng(seed).standard_normal((batch, 3, height, width)).astype(np.float32)
    total = warmup + iterations
    for i in range(warmup):
        engine(x)
        if progress:
            progress(i + 1, total)
    seconds = []
    for i in range(iterations):
        start = time.perf_counter()
        engine(x)
        seconds.append(time.perf_counter() - start)
        if progress:
            progress(warmup + i + 1, total)
    return summarize(batch, seconds)


def time_end_to_end(
    detector: Detector,
    paths: list[str],
    warmup: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> float:
    """Images per second from files to Detections through ``detector.stream`` (wall time).

    ``warmup`` images are run first and not counted (engine start-up, caches).
    ``progress(done, total)`` hears each timed image (a cheap call: it barely moves the time).
    """
    if warmup:
        for _ in detector.stream(paths[:warmup]):
            pass
    start = time.perf_counter()
    done = 0
    for count, result in enumerate(detector.stream(paths), start=1):
        done += result.ok
        if progress:
            progress(count, len(paths))
    return done / (time.perf_counter() - start)


def parse_batches(text: str) -> list[int]:
    """'1,4,8' -> [1, 4, 8]."""
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"not a list of batch sizes: {text!r}") from None
    if not batches or min(batches) < 1:
        raise ValueError(f"batch sizes must be >= 1: {text!r}")
    return batches
