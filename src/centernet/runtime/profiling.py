"""Where the time of a pipelined run goes: seconds per stage, summed over threads.

``Detector.stream(..., profile=StageProfile())`` records each stage (reading files,
decoding, pre-processing, the engine, decoding the maps, and the time each thread spends
waiting for another), so that end-to-end speed can be explained, not guessed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: Stages in pipeline order, with the thread that runs them.
STAGES = {
    "read file": "readers",
    "decode image": "readers",
    "pre-process": "readers",
    "wait for input": "batching",
    "batch assembly": "batching",
    "wait for batch": "engine",
    "engine": "engine",
    "post-process": "decoder",
    "wait for results": "caller",
    "caller's own work": "caller",
}


@dataclass
class StageProfile:
    """Total seconds and event counts per stage; safe to update from several threads."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    images: int = 0
    wall: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float, count: int = 1) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
            self.counts[stage] = self.counts.get(stage, 0) + count

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def rows(self) -> list[tuple[str, str, float, float]]:
        """(stage, thread, ms per image, share of wall time) in pipeline order."""
        per = max(self.images, 1)
        wall = max(self.wall, 1e-9)
        ordered = [s for s in STAGES if s in self.seconds] + [
            s for s in self.seconds if s not in STAGES
        ]
        return [
            (s, STAGES.get(s, "?"), 1e3 * self.seconds[s] / per, self.seconds[s] / wall)
            for s in ordered
        ]


class NullProfile:
    """Stands in when no profile is asked for: timing costs nothing."""

    def add(self, stage: str, seconds: float, count: int = 1) -> None:
        pass

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        yield


NO_PROFILE = NullProfile()
Clock = StageProfile | NullProfile  # what pipeline stages report their time to
