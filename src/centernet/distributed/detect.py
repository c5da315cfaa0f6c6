"""``detect_on_ray``: a run of batch detection on Ray, from the inputs to the shards on
disk, resumable shard by shard (``shards.py``) and carried on past lost actors and nodes
(``pool.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from centernet.distributed import shards as shard_files
from centernet.distributed.actors import DetectJob, Shard
from centernet.distributed.cluster import ClusterLostError, connect
from centernet.distributed.planning import ActorPlan, plan
from centernet.distributed.pool import ShardPool, WorkLostError
from centernet.distributed.ray import RayConfig


@dataclass(frozen=True)
class ImageStatus:
    """One input's outcome as the driver sees it (the boxes are in the shards)."""

    index: int
    source: str
    error: str | None
    boxes: int
    node: str  # the Ray node that ran it ("" when a resumed run found it done)


@dataclass
class RayRun:
    """What a run did: per input, where, and what happened on the way."""

    statuses: list[ImageStatus]
    plan: ActorPlan
    ranges: list[range]  # the shards, for merging
    done_before: int = 0  # images found done in the shards of a stopped run (--resume)
    lost_nodes: list[str] = field(default_factory=list)
    restarted: int = 0  # actors started again after their process died
    load_s: float = 0.0  # the longest model load of the first actors (in parallel)

    def images_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.statuses:
            if status.node:
                counts[status.node] = counts.get(status.node, 0) + 1
        return counts


def detect_on_ray(
    sources: Sequence[str],
    job: DetectJob,
    settings: RayConfig,
    resume: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> RayRun:
    """Detect ``sources`` (paths as given) on an actor pool; the shards go to
    ``job.out/shards``, ``shards.merge_shards`` makes the files of the local command.

    ``resume`` keeps the shards of a stopped run that cover the same inputs and detects
    only the rest (and the images they could not read). Losses of actors and nodes are
    told through ``on_event``.
    """
    actor_plan = plan(settings, connect(settings))
    batch = settings.batch or shard_files.default_batch(len(sources))
    ranges = shard_files.shard_ranges(len(sources), batch)
    if not resume:
        shard_files.clear_shards(job.out)
    previous = shard_files.previous_records(job.out, ranges, sources) if resume else {}
    run = RayRun([_status(i, r, "") for i, r in sorted(previous.items())], actor_plan, ranges)
    statuses = {status.index: status for status in run.statuses if not status.error}
    run.done_before = len(statuses)
    units = _units(sources, ranges, statuses)
    if units:
        pool = ShardPool(
            job, actor_plan, settings.placement_timeout_s, on_event or _quiet,
            lost_after_s=settings.lost_after_s,
        )  # fmt: skip
        try:
            for shard, records, node in pool.run(units):
                again = set(shard.indices)
                kept = [previous[i] for i in _range_of(ranges, shard) if i not in again]
                merged = sorted(kept + records, key=lambda record: int(record["index"]))
                shard_files.write_shard(shard_files.shard_path(job.out, shard.first), merged)
                for record in records:
                    statuses[int(record["index"])] = _status(int(record["index"]), record, node)
                if on_progress:
                    on_progress(len(statuses), len(sources))
        except (ClusterLostError, WorkLostError) as exc:  # what is done stays: say so
            raise type(exc)(f"{exc}. {_left(statuses, sources, job)}") from None
        finally:
            pool.close()
        run.lost_nodes, run.restarted, run.load_s = pool.lost_nodes, pool.restarted, pool.load_s
    run.statuses = [statuses[i] for i in sorted(statuses)]
    return run


def _units(sources: Sequence[str], ranges: list[range], done: dict) -> list[Shard]:
    """The actor calls: per shard, its inputs not yet done."""
    units = []
    for indices in ranges:
        todo = tuple(i for i in indices if i not in done)
        if todo:
            units.append(
                Shard(
                    first=indices.start,
                    indices=todo,
                    paths=tuple(_readable(sources[i]) for i in todo),
                    sources=tuple(sources[i] for i in todo),
                )
            )
    return units


def _readable(source: str) -> str:
    """The path an actor reads: absolute where it exists here (actors have other working
    folders), else as given (the actor then says why it cannot read it)."""
    path = Path(source)
    return str(path.absolute()) if path.exists() else source


def _range_of(ranges: list[range], shard: Shard) -> range:
    return next(r for r in ranges if r.start == shard.first)


def _status(index: int, record: dict, node: str) -> ImageStatus:
    error = record.get("error") or None
    boxes = 0 if error else len(record.get("detections", ()))
    return ImageStatus(index, str(record["source"]), error, boxes, node)


def _left(statuses: dict[int, ImageStatus], sources: Sequence[str], job: DetectJob) -> str:
    done = sum(1 for s in statuses.values() if not s.error)
    folder = Path(job.out) / shard_files.SHARDS
    return (
        f"{done} of {len(sources)} images are done, in {folder}; the same command with "
        "`resume` goes on from there"
    )


def _quiet(_: str) -> None:
    pass
