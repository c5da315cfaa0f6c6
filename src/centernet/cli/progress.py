"""Progress of long commands on stderr, one implementation for all of them: a tqdm bar on
a terminal; elsewhere (a CI log, a pipe) a plain line at the start of each stage, then
every ``interval_s`` seconds or every tenth of the work, whichever comes first, and at
its end (stage, done/total, rate, time left); nothing with ``--quiet``.

``main`` sets the style once per command (``configure``); the commands ask for a bar
(``bar``), wrap an iterable (``progress``) or draw library ``Progress`` reports
(``StageBars``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds between progress lines when stderr is not a terminal (read by the CLI only).
INTERVAL_ENV = "CENTERNET_PROGRESS_INTERVAL"


@dataclass
class ProgressConfig:
    """How progress is shown. ``terminal``: None asks whether stderr is a terminal."""

    quiet: bool = False
    interval_s: float = 10.0
    step: float = 0.1  # a line at least every this share of the work
    terminal: bool | None = None


_config = ProgressConfig()


def configure(quiet: bool = False, environ: dict[str, str] | None = None) -> ProgressConfig:
    """Set the style for this command: ``--quiet``, and the interval from
    ``$CENTERNET_PROGRESS_INTERVAL`` (seconds; default 10)."""
    global _config
    text = (os.environ if environ is None else environ).get(INTERVAL_ENV, "")
    try:
        interval = float(text) if text.strip() else ProgressConfig.interval_s
    except ValueError:
        interval = ProgressConfig.interval_s
    _config = ProgressConfig(quiet=quiet, interval_s=max(0.0, interval))
    return _config


def bar(total: int | None, desc: str, unit: str = "it", leave: bool = True) -> Any:
    """A progress bar with tqdm's ``update``/``n``/``set_postfix``/``close`` (and a context
    manager): tqdm on a terminal, progress lines elsewhere, nothing when quiet."""
    if _config.quiet:
        return _Silent()
    terminal = sys.stderr.isatty() if _config.terminal is None else _config.terminal
    if terminal:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave)
    return LineBar(total, desc, unit, _config.interval_s, _config.step)


def progress(iterable: Iterable[T], total: int, desc: str, unit: str = "img") -> Iterator[T]:
    """Yield ``iterable`` unchanged, counting each item on a bar."""
    with bar(total, desc, unit) as shown:
        for item in iterable:
            yield item
            shown.update(1)


class StageBars:
    """Draws library ``Progress(stage, done, total)`` reports: one bar per stage (and, with
    ``announce``, a call when a stage starts, for the command's own log lines)."""

    def __init__(self, announce: Callable[[str], None] | None = None) -> None:
        self.announce = announce
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            if self.announce:
                self.announce(stage)
            self.bar = bar(total, stage, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.stage = None, None

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent:
    """The bar of ``--quiet``: counts, shows nothing."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LineBar(_Silent):
    """Progress as plain lines on stderr, for logs: one when it starts, then whenever
    ``interval_s`` has passed (also with no update in between: a watcher thread) or another
    ``step`` of the total is done, and one at the end."""

    def __init__(
        self, total: int | None, desc: str, unit: str, interval_s: float, step: float
    ) -> None:
        super().__init__()
        self.total, self.desc, self.unit = total, desc, unit
        self.interval_s, self.step = interval_s, step
        self.postfix = ""
        self.started = self.last_time = self.last_update = time.monotonic()
        self.last_n: int | None = None
        self.last_share = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._emit()
        self._watcher = None
        if interval_s > 0:
            self._watcher = threading.Thread(target=self._watch, name="centernet-progress")
            self._watcher.daemon = True
            self._watcher.start()

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            if n:
                self.last_update = time.monotonic()
            due = self.last_update - self.last_time >= self.interval_s
            if due or self._share() > self.last_share:
                self._emit()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = str(text)

    def set_postfix(self, ordered: dict | None = None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            if self.n != self.last_n:
                self._emit()

    def _share(self) -> int:
        """How many whole ``step``s of the total are done."""
        if not self.total or self.step <= 0:
            return 0
        return int(self.n / self.total / self.step + 1e-9)

    def _watch(self) -> None:
        while not self._closed.wait(self.interval_s / 4 if self.interval_s < 4 else 1.0):
            with self._lock:
                finished = self.total is not None and self.n >= self.total
                if not finished and time.monotonic() - self.last_time >= self.interval_s:
                    self._emit()  # a finished stage has said so once: no repeats

    def _emit(self) -> None:
        """One line; the caller holds the lock (or no thread runs yet)."""
        now = time.monotonic()
        print(self.line(now - self.started), file=sys.stderr, flush=True)
        self.last_time, self.last_n, self.last_share = now, self.n, self._share()

    def line(self, elapsed: float) -> str:
        """``stage: done/total unit (share), rate unit/s, elapsed, ETA``: the rate up to
        the last update (a stage waiting on work it does not count keeps its rate)."""
        working = self.last_update - self.started
        rate = self.n / working if working > 0 else 0.0
        parts = [f"{self.desc}: {self.n}/{'?' if self.total is None else self.total} {self.unit}"]
        if self.total:
            parts[0] += f" ({self.n / self.total:.0%})"
        parts.append(f"{_rate(rate)} {self.unit}/s" if self.n else f"0 {self.unit}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.total and self.n < self.total:
            eta = (self.total - self.n) / rate if rate > 0 else None
            parts.append(f"ETA {_clock(eta) if eta is not None else '?'}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)


def _rate(rate: float) -> str:
    return f"{rate:.1f}" if rate >= 1 else f"{rate:.3g}"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
