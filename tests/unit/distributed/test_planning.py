"""Actors and threads are planned per node: none larger than the largest node, spread over
the nodes, and what cannot be placed is an error that says what fits."""

from __future__ import annotations

import pytest

from centernet.distributed.cluster import NodeInfo
from centernet.distributed.planning import PlacementError, plan
from centernet.distributed.ray import RayConfig
from centernet.errors import as_command_line

HEAD = NodeInfo("h" * 56, "10.0.0.1", cpus=0, gpus=0, head=True)


def node(name: str, cpus: float, gpus: float = 0) -> NodeInfo:
    return NodeInfo(name * 56, "10.0.0.2", cpus=cpus, gpus=gpus, head=False)


TWO_SMALL = [HEAD, node("a", 1), node("b", 1)]


def placed(settings: RayConfig, nodes) -> list[tuple[str, int]]:
    return [(slot.node.node_id[0], slot.threads) for slot in plan(settings, nodes).slots]


@pytest.mark.parametrize(
    ("settings", "nodes", "want"),
    [
        (RayConfig(), TWO_SMALL, [("a", 1), ("b", 1)]),  # one 1-thread actor a node
        (RayConfig(workers=1), TWO_SMALL, [("a", 1)]),  # not one 2-CPU actor: none fits
        (RayConfig(workers=2), TWO_SMALL, [("a", 1), ("b", 1)]),  # spread: one each
        (RayConfig(), [node("a", 2)], [("a", 2)]),  # this machine: 1 actor x 2 threads
        (RayConfig(), [node("a", 8), node("b", 3)], [("a", 2)] * 4 + [("b", 3)]),
        (RayConfig(threads=4), [node("a", 8), node("b", 3)], [("a", 4), ("a", 4)]),
        (RayConfig(workers=2), [node("a", 8), node("b", 4)], [("a", 4), ("b", 4)]),
        (RayConfig(workers=3, threads=1), [node("a", 2), node("b", 1)],
         [("a", 1), ("b", 1), ("a", 1)]),
        (RayConfig(gpus_per_worker=1.0), [node("a", 8, gpus=2), node("b", 8)],
         [("a", 4), ("a", 4)]),
    ],
)  # fmt: skip
def test_plans(settings, nodes, want):
    assert placed(settings, nodes) == want


def test_the_plan_says_what_it_chose():
    chosen = plan(RayConfig(), TWO_SMALL)
    assert chosen.describe() == "2 actors x 1 threads on 2 node(s)"
    assert (chosen.settings.workers, chosen.settings.threads) == (2, 1)
    mixed = plan(RayConfig(), [node("a", 4), node("b", 1)])
    assert mixed.describe() == "3 actors x 1-2 threads on 2 node(s)"


@pytest.mark.parametrize(
    ("settings", "nodes", "says"),
    [
        (RayConfig(threads=2), TWO_SMALL,
         "an actor with --threads 2 needs 2 CPUs on one node, and the largest node has 1"),
        (RayConfig(workers=3), TWO_SMALL,
         "--ray-workers 3 actors with 1 engine thread(s) each do not fit: the nodes hold 2"),
        (RayConfig(workers=4, threads=2), [node("a", 4), node("b", 3)],
         "the nodes hold 3 such actors"),
        (RayConfig(), [HEAD], "no node of the cluster has a CPU for an actor"),
        (RayConfig(gpus_per_worker=1.0), TWO_SMALL, "no node of the cluster has a GPU"),
    ],
)  # fmt: skip
def test_what_cannot_be_placed_is_said_at_once(settings, nodes, says):
    with pytest.raises(PlacementError) as error:
        plan(settings, nodes)
    assert says in as_command_line(str(error.value))


def test_a_spare_slot_for_a_replacement_is_where_the_plan_left_room():
    chosen = plan(RayConfig(workers=2, threads=1), [node("a", 2), node("b", 1)])
    a, b = chosen.nodes
    assert chosen.spare(a, 1, running=1) and not chosen.spare(a, 1, running=2)
    assert not chosen.spare(b, 1, running=1)
