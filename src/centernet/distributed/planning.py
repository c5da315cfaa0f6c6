"""How many actors, with how many engine threads, on which node: planned per node.

An actor takes ``threads`` CPUs on one node, so no actor may be larger than the largest
node: a plan from the cluster's total CPUs asked for one 2-CPU actor on two 1-CPU nodes,
which Ray waited for forever. Here each node holds ``floor(cpus / threads)`` actors, the
actors are spread over the nodes (the one with the most room first), and a plan that
cannot be placed is an error that says what would fit, before any actor is started.

Defaults: neither ``workers`` nor ``threads`` given: on each node ``cpus // 2`` actors
(at least one) sharing its CPUs, i.e. two engine threads per actor where a node has two
CPUs or more and one on a 1-CPU node; ``workers`` given: the most threads per actor that
still lets that many actors fit; ``threads`` given: as many actors as fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from centernet.distributed.cluster import NodeInfo
from centernet.errors import CenterNetError

if TYPE_CHECKING:
    from centernet.distributed.ray import RayConfig

DEFAULT_THREADS = 2  # engine threads per actor when neither workers nor threads is given


class PlacementError(CenterNetError):
    """The actors asked for cannot be placed on the cluster's nodes."""


@dataclass(frozen=True)
class Slot:
    """One actor of the plan: the node it is pinned to and its engine threads (= CPUs)."""

    node: NodeInfo
    threads: int


@dataclass(frozen=True)
class ActorPlan:
    """The actors of a run, and the settings with workers and threads filled in."""

    settings: RayConfig
    slots: tuple[Slot, ...]
    nodes: tuple[NodeInfo, ...]

    def describe(self) -> str:
        """``2 actors x 1 threads on 2 node(s)``."""
        threads = sorted({slot.threads for slot in self.slots})
        each = str(threads[0]) if len(threads) == 1 else f"{threads[0]}-{threads[-1]}"
        nodes = len({slot.node.node_id for slot in self.slots})
        return f"{len(self.slots)} actors x {each} threads on {nodes} node(s)"

    def spare(self, node: NodeInfo, threads: int, running: int) -> bool:
        """Whether ``node`` has room for one more actor of ``threads`` besides ``running``
        of this plan's actors (where to put a replacement for a lost actor)."""
        return _room(node, threads, self.settings.gpus_per_worker) > running


def _room(node: NodeInfo, threads: int, gpus_per_worker: float) -> int:
    """Actors of ``threads`` CPUs (and ``gpus_per_worker`` GPUs) that fit on ``node``."""
    room = int(node.cpus // threads)
    if gpus_per_worker:
        room = min(room, int(node.gpus // gpus_per_worker))
    return room


def _nodes_text(nodes: Sequence[NodeInfo]) -> str:
    return ", ".join(f"{node.short}: {node.cpus:g} CPU" for node in nodes)


def plan(settings: RayConfig, nodes: Sequence[NodeInfo]) -> ActorPlan:
    """The actors for ``settings`` on ``nodes`` (``cluster.alive_nodes()``), or a
    PlacementError that names what fits."""
    gpus = settings.gpus_per_worker
    usable = [n for n in nodes if n.cpus >= 1 and (not gpus or n.gpus >= gpus)]
    if not usable:
        need = "a GPU" if gpus else "a CPU"
        raise PlacementError(
            f"no node of the cluster has {need} for an actor ({_nodes_text(nodes)})"
        )
    largest = int(max(n.cpus for n in usable))
    if settings.threads and settings.threads > largest:
        raise PlacementError(
            f'an actor with `threads="{settings.threads}"` needs {settings.threads} CPUs on one '
            f"node, and the largest node has {largest} ({_nodes_text(nodes)}): give "
            f"`threads` <= {largest}, or more `workers` with fewer threads each"
        )
    if settings.workers:
        threads = settings.threads or _widest(settings.workers, usable, largest, gpus)
        slots = _spread(settings.workers, threads, usable, gpus)
    elif settings.threads:
        slots = [
            Slot(n, settings.threads)
            for n in usable
            for _ in range(_room(n, settings.threads, gpus))
        ]
    else:
        slots = [slot for n in usable for slot in _fill(n, gpus)]
    threads_each = {slot.threads for slot in slots}
    used = replace(
        settings,
        workers=len(slots),
        threads=threads_each.pop() if len(threads_each) == 1 else max(threads_each),
    )
    return ActorPlan(used, tuple(slots), tuple(nodes))


def _widest(workers: int, nodes: Sequence[NodeInfo], largest: int, gpus: float) -> int:
    """The most threads per actor with which ``workers`` actors still fit."""
    for threads in range(largest, 0, -1):
        if sum(_room(n, threads, gpus) for n in nodes) >= workers:
            return threads
    return 1  # none fit even with one thread: _spread says so


def _spread(workers: int, threads: int, nodes: Sequence[NodeInfo], gpus: float) -> list[Slot]:
    """``workers`` actors of ``threads`` over ``nodes``, each to the node with the most room
    left (so that two actors on two nodes go one to each)."""
    room = {n.node_id: _room(n, threads, gpus) for n in nodes}
    if sum(room.values()) < workers:
        raise PlacementError(
            f'`workers="{workers}"` actors with {threads} engine thread(s) each do not fit: '
            f"the nodes hold {sum(room.values())} such actors ({_nodes_text(nodes)}); give "
            f"`workers` <= {sum(room.values())}" + (" or fewer `threads`" if threads > 1 else "")
        )
    slots: list[Slot] = []
    for _ in range(workers):  # the roomiest node, of those the one with fewest so far
        node = max(nodes, key=lambda n: (room[n.node_id], -sum(s.node is n for s in slots)))
        room[node.node_id] -= 1
        slots.append(Slot(node, threads))
    return slots


def _fill(node: NodeInfo, gpus: float) -> list[Slot]:
    """The default on one node: ``cpus // 2`` actors (at least one) sharing its CPUs."""
    cpus = int(node.cpus)
    count = max(1, cpus // DEFAULT_THREADS)
    if gpus:
        count = min(count, int(node.gpus // gpus))
    threads = cpus // count
    return [Slot(node, threads) for _ in range(count)]
