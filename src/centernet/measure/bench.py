"""Throughput and latency.

Network-only, like the vendor's ``mm_run``: a fixed random batch, warm-up runs, then
timed runs; images per second from the median batch latency, latency percentiles per
batch. End-to-end: wall time from image files to Detections through the pipelined
Detector (read, decode, pre-process, engine, post-process).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from centernet.engines import Engine
from centernet.progress import Progress
from centernet.runtime.detector import Detector
from centernet.types import ModelSpec


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

    def to_dict(self) -> dict:
        """The JSON form every bench and report writes (same keys everywhere)."""
        return {
            "batch": self.batch,
            "iterations": self.iterations,
            "images_per_s": self.images_per_s,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
        }


@dataclass(frozen=True)
class BenchRow:
    """One batch size: the network alone, and (with images) files to Detections."""

    batch: int
    network: Timing
    end_to_end_images_per_s: float | None = None

    def to_dict(self) -> dict:
        return {
            "batch": self.batch,
            "network": self.network.to_dict(),
            "end_to_end_images_per_s": self.end_to_end_images_per_s,
        }


@dataclass
class BenchResult:
    """What ``centernet bench`` measured on one model, as a table or as JSON."""

    model: str
    engine: str
    spec: ModelSpec
    inference_precision: str
    iterations: int
    machine: str
    rows: list[BenchRow] = field(default_factory=list)

    def markdown(self) -> str:
        spec = self.spec
        lines = [
            f"{self.model}: {spec.arch} {spec.precision} (float layers in "
            f"{self.inference_precision}), engine {self.engine}, input "
            f"{spec.input_size[0]}x{spec.input_size[1]}, {self.iterations} iterations; "
            f"{self.machine}"
        ]
        with_e2e = any(r.end_to_end_images_per_s is not None for r in self.rows)
        header = "| batch | network img/s | p50 ms | p90 ms | p99 ms |" + (
            " end-to-end img/s | end to end / network |" if with_e2e else ""
        )
        lines += [header, "|---" * (header.count("|") - 1) + "|"]
        for row in self.rows:
            t = row.network
            line = (
                f"| {t.batch} | {t.images_per_s:.2f} | {t.p50_ms:.1f} | {t.p90_ms:.1f} "
                f"| {t.p99_ms:.1f} |"
            )
            if with_e2e:
                e2e = row.end_to_end_images_per_s or 0.0
                line += f" {e2e:.2f} | {e2e / t.images_per_s:.0%} |"
            lines.append(line)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "engine": self.engine,
            "precision": self.spec.precision,
            "inference_precision": self.inference_precision,
            "machine": self.machine,
            "rows": [row.to_dict() for row in self.rows],
        }


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


def bench_model(
    engine: Engine,
    model: str,
    batches: list[int],
    iterations: int,
    warmup: int,
    paths: list[str] | None = None,
    progress: Progress | None = None,
) -> BenchResult:
    """Network-only timing per batch size, and with ``paths`` end to end through a
    Detector on the same engine (the files repeated to at least two batches).
    ``progress`` hears each run (stages "batch N: network", "batch N: end to end")."""
    from centernet.measure.machine import describe_machine

    result = BenchResult(
        model=model,
        engine=engine.name,
        spec=engine.spec,
        inference_precision=getattr(engine, "inference_precision", "fp32"),
        iterations=iterations,
        machine=describe_machine(),
    )
    for batch in batches:
        timing = time_network(
            engine, batch, iterations, warmup, progress=_stage(progress, f"batch {batch}: network")
        )
        e2e = None
        if paths:
            count = max(len(paths), 2 * batch)
            work = (paths * (count // len(paths) + 1))[:count]
            e2e = time_end_to_end(
                Detector(engine, batch_size=batch),
                work,
                warmup=batch,
                progress=_stage(progress, f"batch {batch}: end to end"),
            )
        result.rows.append(BenchRow(batch, timing, e2e))
    return result


def _stage(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    """A ``(done, total)`` callback that reports to ``progress`` under ``stage``."""
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def parse_batches(text: str) -> list[int]:
    """'1,4,8' -> [1, 4, 8]."""
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"not a list of batch sizes: {text!r}") from None
    if not batches or min(batches) < 1:
        raise ValueError(f"batch sizes must be >= 1: {text!r}")
    return batches
