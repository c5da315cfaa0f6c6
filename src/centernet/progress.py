"""How library code reports long work without printing: a callback the CLI draws as bars.

``Progress(stage, done, total)`` is called as work advances: ``stage`` names the step in
words ("int8-mixed: per-layer SQNR"), ``done`` of ``total`` units are finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Progress = Callable[[str, int, int], None]
T = TypeVar("T")


def counted(items: Iterable[T], stage: str, total: int, progress: Progress | None) -> Iterator[T]:
    """Yield ``items`` unchanged, reporting each one to ``progress`` (when there is one)."""
    if progress is None:
        yield from items
        return
    progress(stage, 0, total)
    for done, item in enumerate(items, start=1):
        yield item
        progress(stage, done, total)
