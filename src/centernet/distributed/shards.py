"""The files of a Ray detect run: one shard per actor call, written whole or not at all.

Shard ``k`` holds the inputs ``[k * batch, (k + 1) * batch)`` as JSON lines
(``OUT/shards/NNNNNNNNNN.jsonl``, named by its first input index), one record per input in
input order: a detected image as ``detections.jsonl`` writes it, plus its ``index``; an
unreadable one as ``{"index", "source", "error"}``. The driver writes every shard (temp
file, fsync, rename), so a shard on disk is complete and a stopped run leaves no half
shard; ``--resume`` keeps the shards whose records name the same inputs and detects the
rest. The batch is a function of the input count alone, so a rerun cuts the inputs the
same way. At the end the shards are merged in input order into ``detections.jsonl`` and
``detections.json``, the local command's files, one shard in memory at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SHARDS = "shards"
SUFFIX = ".jsonl"
MAX_BATCH = 16  # images per shard by default, at most
SHARDS_PER_RUN = 32  # by default, a run is cut into about this many shards (or more)


def default_batch(count: int) -> int:
    """Images per shard when not given: about ``SHARDS_PER_RUN`` shards, at most
    ``MAX_BATCH`` images each. Small shards keep the actors busy to the end (the last
    actor to finish runs at most one small shard alone); the input count alone decides,
    so a resumed run cuts the inputs as the stopped one did."""
    return max(1, min(MAX_BATCH, -(-count // SHARDS_PER_RUN)))


def shard_ranges(count: int, batch: int) -> list[range]:
    """The input indices of each shard, in order."""
    return [range(start, min(start + batch, count)) for start in range(0, count, batch)]


def shard_path(out: str | Path, first: int) -> Path:
    return Path(out) / SHARDS / f"{first:010d}{SUFFIX}"


def clear_shards(out: str | Path) -> None:
    """Remove the shards (and temp files) of an earlier run: they would be taken for this
    run's."""
    folder = Path(out) / SHARDS
    if folder.is_dir():
        for stale in (*folder.glob(f"*{SUFFIX}"), *folder.glob("*.json"), *folder.glob("*.tmp")):
            stale.unlink()


def write_shard(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """``records`` as JSON lines at ``path``, atomically: a reader (or a rerun after a
    kill) sees the whole shard or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, separators=(",", ":")) + "\n")
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def read_shard(path: Path) -> list[dict[str, Any]] | None:
    """The records of a shard, or None when there is none (or it is not one of ours)."""
    try:
        text = path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError):
        return None


def previous_records(
    out: str | Path, ranges: Sequence[range], sources: Sequence[str]
) -> dict[int, dict[str, Any]]:
    """For ``--resume``: the records of the shards on disk that cover exactly this run's
    inputs at their place (index and source), by input index. A shard cut otherwise (other
    inputs, another batch) is not taken: its inputs are detected again."""
    done: dict[int, dict[str, Any]] = {}
    for indices in ranges:
        records = read_shard(shard_path(out, indices.start))
        if records is None:
            continue
        by_index = {int(r.get("index", -1)): r for r in records}
        if set(by_index) == set(indices) and all(
            str(by_index[i].get("source")) == sources[i] for i in indices
        ):
            done.update(by_index)
    return done


def log_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """The ``detections.jsonl`` line of a shard record (None for an unreadable image)."""
    if record.get("error"):
        return None
    return {key: record[key] for key in ("source", "file_name", "detections")}


def iter_records(out: str | Path, ranges: Sequence[range]) -> Iterator[dict[str, Any]]:
    """Every record of the shards of ``ranges``, in input order."""
    for indices in ranges:
        yield from read_shard(shard_path(out, indices.start)) or []


def merge_shards(out: str | Path, ranges: Sequence[range], json_path: Path, log_path: Path) -> int:
    """Write ``detections.json`` (the COCO entries of every image, as ``json.dumps`` of the
    whole list would) and ``detections.jsonl`` (a line per detected image) from the shards,
    in input order; each atomically. Returns the number of entries."""
    count = 0
    json_tmp, log_tmp = json_path.with_suffix(".json.tmp"), log_path.with_suffix(".jsonl.tmp")
    with json_tmp.open("w", encoding="utf-8") as merged, log_tmp.open("w", encoding="utf-8") as log:
        merged.write("[")
        for record in iter_records(out, ranges):
            line = log_record(record)
            if line is None:
                continue
            log.write(json.dumps(line, separators=(",", ":")) + "\n")
            for entry in line["detections"]:
                merged.write((", " if count else "") + json.dumps(entry))
                count += 1
        merged.write("]")
    json_tmp.replace(json_path)
    log_tmp.replace(log_path)
    return count


def read_entries(out: str | Path, ranges: Sequence[range]) -> Iterator[dict[str, Any]]:
    """Every COCO entry of the shards, in input order (for eval)."""
    for record in iter_records(out, ranges):
        yield from record.get("detections", ())
