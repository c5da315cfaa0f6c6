"""A run's results as JSON lines, one line per finished input, written as they come, so
that a run stopped by a crash, Ctrl-C or a kill keeps what it finished and a rerun can
skip it (``centernet detect --resume``).

Each line is flushed when written. A hard kill can still leave the last line half
written: reading ignores a last line without its newline (its input is simply not done),
and opening the log to resume cuts it off before appending. A line that is not JSON anywhere
else is an error: the file is not a log this module wrote.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from centernet.errors import CenterNetError

#: The key of a record that names its input (the path as the run was given it).
SOURCE_KEY = "source"


@dataclass
class LogContents:
    """The whole records of a log, in the order written, and where the last one ends."""

    records: list[dict[str, Any]]
    end: int  # bytes of whole lines: a torn last line starts here
    torn: bool  # whether a half-written last line follows ``end``

    def done(self) -> Counter[str]:
        """How many times each source is done (an input may be listed more than once)."""
        return Counter(str(r[SOURCE_KEY]) for r in self.records)


def read_results_log(path: str | Path) -> LogContents:
    """The records of ``path`` (none when it does not exist), tolerating a torn last line."""
    path = Path(path)
    if not path.is_file():
        return LogContents([], 0, False)
    data = path.read_bytes()
    records, end = [], 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):  # each ended by its newline
        try:
            record = json.loads(line) if line.strip() else None
            if record is not None and (not isinstance(record, dict) or SOURCE_KEY not in record):
                raise ValueError(f"not an object with {SOURCE_KEY!r}")
        except ValueError as exc:
            raise CenterNetError(
                f"{path}: line {number} is not a results line ({exc}); delete the file, or "
                "start over without `resume`"
            ) from None
        if record is not None:
            records.append(record)
        end += len(line) + 1
    # text after the last newline is a line whose write was cut short: not done
    return LogContents(records, end, torn=bool(lines[-1]))


class ResultsLog:
    """Appends one JSON line per finished input to ``path``, flushed per line.

    ``resume=False`` starts the file afresh (an existing one is replaced); ``resume=True``
    keeps its whole lines (``previous``), cuts off a torn last line and appends after them.
    """

    def __init__(self, path: str | Path, resume: bool = False) -> None:
        self.path = Path(path)
        self.previous = read_results_log(self.path) if resume else LogContents([], 0, False)
        if resume and self.previous.torn:
            with self.path.open("r+b") as file:
                file.truncate(self.previous.end)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a" if resume else "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """One record (it must name its ``source``), on a line of its own, flushed."""
        if SOURCE_KEY not in record:
            raise ValueError(f"a results record needs {SOURCE_KEY!r}")
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pending(sources: list[str], done: Counter[str]) -> list[bool]:
    """For each of ``sources`` in order, whether it still has to run: the first ``done[s]``
    occurrences of each source are done."""
    left = Counter(done)
    todo = []
    for source in sources:
        if left[source] > 0:
            left[source] -= 1
            todo.append(False)
        else:
            todo.append(True)
    return todo
