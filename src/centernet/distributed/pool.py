"""Batch detection on a pool of Ray actors that goes on when an actor or a node is lost.

Why our own pool and not Ray Data's (the first version's): with Ray Data, an actor lost
with its node could leave the job waiting forever (its output blocks gone with the node),
its streaming executor spent CPU on a 2-core machine that the engines needed, and its
batches did not line up with shards a rerun could recognise. Here the driver keeps
``IN_FLIGHT`` shards queued on each actor (the next starts the moment the last ends) and
waits on all of them at once, a second at a time:

- a call whose actor is gone (its process died, its node was lost, or its result was lost
  with the node) puts its shard back at the front of the queue. Only the driver writes
  shards, so nothing of it was written: nothing lost, nothing doubled;
- the actor is replaced on its node when the node is alive (a process that died), else on
  another node with room; otherwise the other actors take its work. Each loss is told
  through ``on_event``;
- an actor not placed within ``placement_timeout_s`` is an error that says so (other
  work holds the CPUs), instead of a wait without end;
- when the node this process runs on (or the head) stops answering, nothing can go on:
  ``ClusterLostError``, and the shards written so far stay for ``--resume``.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from centernet.distributed.actors import DetectJob, Shard, ShardDetector
from centernet.distributed.cluster import AttachedNodeWatch, alive_nodes, require_ray
from centernet.distributed.planning import ActorPlan, PlacementError, Slot
from centernet.errors import CenterNetError

IN_FLIGHT = 2  # shards queued on an actor: one running, the next waiting
MAX_ATTEMPTS = 3  # a shard lost with its actor this often is an error, not a retry
POLL_S = 1.0

Events = Callable[[str], None]


class WorkLostError(CenterNetError):
    """The pool cannot finish: every actor lost, or a shard lost too often."""


@dataclass
class _Actor:
    handle: Any
    slot: Slot
    created: float
    replacement: bool
    ready: bool = False
    live: bool = True
    inflight: list[Shard] = field(default_factory=list)


class ShardPool:
    """The actors of one run and the calls in flight on them."""

    def __init__(
        self,
        job: DetectJob,
        plan: ActorPlan,
        placement_timeout_s: float,
        on_event: Events,
        lost_after_s: float = 10.0,
    ) -> None:
        self.ray = require_ray()
        self.job, self.plan = job, plan
        self.placement_timeout_s = placement_timeout_s
        self.on_event = on_event
        self.actors: list[_Actor] = []
        self.calls: dict[Any, tuple[_Actor, str, Shard | None]] = {}
        self.pending: deque[Shard] = deque()
        self.attempts: dict[int, int] = {}
        self.lost_nodes: list[str] = []
        self.restarted = 0
        self.load_s = 0.0
        self.watch = AttachedNodeWatch(lost_after_s)
        self._remote = self.ray.remote(ShardDetector)

    def run(self, shards: list[Shard]) -> Iterator[tuple[Shard, list[dict], str]]:
        """Detect ``shards``; yields (shard, its records, the node that ran it) as each is
        done, in the order they finish."""
        self.pending.extend(shards)
        for slot in self.plan.slots:
            self._start(slot, replacement=False)
        while self.pending or any(actor.inflight for actor in self.actors):
            self._fill()
            ready, _ = self.ray.wait(list(self.calls), num_returns=1, timeout=POLL_S)
            self.watch.check()
            self._check_placement()
            for ref in ready:
                if ref not in self.calls:  # its actor was lost meanwhile
                    continue
                done = self._take(ref)
                if done is not None:
                    yield done

    def close(self) -> None:
        """Stop every actor (their CPUs go back to the cluster at once)."""
        for actor in self.actors:
            if actor.live:
                self._kill(actor)

    def _start(self, slot: Slot, replacement: bool) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options: dict[str, Any] = {
            "num_cpus": slot.threads,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(slot.node.node_id, soft=False),
            "max_restarts": 0,  # the pool replaces a lost actor itself, where there is room
            "max_task_retries": 0,
        }
        if self.plan.settings.gpus_per_worker:
            options["num_gpus"] = self.plan.settings.gpus_per_worker
        handle = self._remote.options(**options).remote(self.job, slot.threads)
        actor = _Actor(handle, slot, time.monotonic(), replacement)
        self.actors.append(actor)
        self.calls[handle.ready.remote()] = (actor, "ready", None)
        self.calls[handle.load.remote()] = (actor, "load", None)

    def _fill(self) -> None:
        live = [actor for actor in self.actors if actor.live]
        if not live and self.pending:
            raise WorkLostError("every actor was lost and no node has room for a new one")
        for _ in range(IN_FLIGHT):
            for actor in live:  # one shard each in turn: the work spreads over the actors
                if self.pending and len(actor.inflight) < IN_FLIGHT:
                    shard = self.pending.popleft()
                    actor.inflight.append(shard)
                    self.calls[actor.handle.detect.remote(shard)] = (actor, "detect", shard)

    def _take(self, ref: Any) -> tuple[Shard, list[dict], str] | None:
        from ray.exceptions import RayTaskError

        actor, kind, shard = self.calls.pop(ref)
        try:
            value = self.ray.get(ref)
        except RayTaskError as exc:  # our code raised in the actor: not a loss, an error
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            raise CenterNetError(
                f"the actor on node {actor.slot.node.short} failed in {kind}: {cause}"
            ) from None
        except _lost_errors() as exc:
            self._lost(actor, exc)
            return None
        if kind == "ready":
            self._placed(actor, value)
        elif kind == "load":
            self.load_s = value if actor.replacement else max(self.load_s, value)
        else:
            actor.inflight.remove(shard)
            return shard, value, actor.slot.node.node_id
        return None

    def _placed(self, actor: _Actor, info: dict[str, Any]) -> None:
        import centernet

        actor.ready = True
        if info["version"] != centernet.__version__:
            raise CenterNetError(
                f"the actor on node {actor.slot.node.short} runs centernet {info['version']} "
                f"(from {info['package']}), this command {centernet.__version__}: install "
                "the same version on every node"
            )

    def _check_placement(self) -> None:
        now = time.monotonic()
        for actor in self.actors:
            if not actor.live or actor.ready or now - actor.created < self.placement_timeout_s:
                continue
            where = f"node {actor.slot.node.short}"
            if not actor.replacement:
                raise PlacementError(
                    f"an actor of {actor.slot.threads} CPU(s) was not placed on {where} "
                    f"within {self.placement_timeout_s:g} s: other work holds its CPUs; "
                    "give fewer `workers` or `threads`, or wait for that work to end"
                )
            self.on_event(
                f"no room for a new actor on {where} within {self.placement_timeout_s:g} s: "
                "the other actors go on without it"
            )
            self._drop(actor)

    def _lost(self, actor: _Actor, exc: Exception) -> None:
        """An actor is gone: its shards go back to the queue, and it is replaced where
        there is room."""
        shards = self._drop(actor)
        for shard in shards:
            self.attempts[shard.first] = self.attempts.get(shard.first, 0) + 1
            if self.attempts[shard.first] >= MAX_ATTEMPTS:
                raise WorkLostError(
                    f"{shard.describe()} was lost with its actor {MAX_ATTEMPTS} times (last: "
                    f"{_first_line(exc)}); an image in it may crash the engine: run it with "
                    "the local `detect` to find which"
                )
        self.pending.extendleft(reversed(shards))
        images = sum(len(shard.indices) for shard in shards)
        work = f"its {len(shards)} shard(s) ({images} images) are redone"
        node = actor.slot.node
        alive = {n.node_id: n for n in alive_nodes()}
        node_lost = node.node_id not in alive or not node.answers()
        if not node_lost and self._room_on(alive[node.node_id], actor.slot.threads):
            self.restarted += 1
            self.on_event(
                f"an actor on node {node.short} was lost ({_first_line(exc)}): "
                f"started again; {work}"
            )
            self._start(actor.slot, replacement=True)
            return
        if node_lost and node.node_id not in self.lost_nodes:
            self.lost_nodes.append(node.node_id)
        elsewhere = [
            n for n in alive.values()
            if n.node_id not in self.lost_nodes and self._room_on(n, actor.slot.threads)
        ]  # fmt: skip
        if elsewhere:
            self._start(Slot(elsewhere[0], actor.slot.threads), replacement=True)
        what = f"node {node.short} lost: its actor is gone" if node_lost else (
            f"an actor on node {node.short} was lost ({_first_line(exc)})"
        )  # fmt: skip
        self.on_event(
            f"{what}; {work} "
            + (f"on a new actor on node {elsewhere[0].short}" if elsewhere else "by the others")
        )

    def _room_on(self, node: Any, threads: int) -> bool:
        running = sum(1 for a in self.actors if a.live and a.slot.node.node_id == node.node_id)
        return self.plan.spare(node, threads, running)

    def _drop(self, actor: _Actor) -> list[Shard]:
        """Forget ``actor`` and its calls; the shards it held."""
        actor.live = False
        for ref in [ref for ref, (owner, _, _) in self.calls.items() if owner is actor]:
            del self.calls[ref]
        shards, actor.inflight = actor.inflight, []
        self._kill(actor)
        return shards

    def _kill(self, actor: _Actor) -> None:
        actor.live = False
        with contextlib.suppress(Exception):  # already gone with its node: nothing to stop
            self.ray.kill(actor.handle, no_restart=True)


def _lost_errors() -> tuple[type[Exception], ...]:
    """What a call raises when its actor, its node or its result is gone."""
    from ray import exceptions

    return (
        exceptions.RayActorError,
        exceptions.ActorUnschedulableError,
        exceptions.ObjectLostError,
        exceptions.NodeDiedError,
        exceptions.WorkerCrashedError,
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
