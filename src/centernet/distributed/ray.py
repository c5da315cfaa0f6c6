"""Beyond one machine: batch detection on a Ray actor pool, and the server on Ray Serve.

The per-image work stays the Detector's (read, pre-process, engine, decode); Ray only
schedules it. Where each part lives: ``cluster.py`` (joining, the nodes, the attached
node's watch), ``planning.py`` (actors and threads per node), ``actors.py`` (the actor),
``pool.py`` (the driver's loop over lost actors and nodes), ``shards.py`` (the files,
resume, merge), ``detect.py`` (a run), ``serve.py`` (Ray Serve). This module holds the
settings and the names callers import.

``ray`` is the optional extra ``ray``; nothing here imports it before it is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from centernet._lazy import lazy_exports


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run (``planning.py`` says how the defaults are chosen)."""

    address: str | None = None  # None: start Ray on this machine; else join this cluster
    node_ip: str | None = None  # this machine's address in the cluster; None: Ray's choice,
    # or the address's host when the cluster listens on loopback only
    workers: int | None = None  # actors; None: per node, one per 2 CPUs (at least one)
    batch: int | None = None  # images per actor call and shard; None: shards.default_batch
    threads: int | None = None  # engine threads (= CPUs) per actor; None: planned per node
    gpus_per_worker: float = 0.0  # --device cuda: Ray places each actor on a GPU
    placement_timeout_s: float = 60.0  # an actor not placed by then: an error, not a wait
    lost_after_s: float = 10.0  # this command's node or the head silent this long: stop


# the names of the modules that make up the Ray front, importable from here as before
__getattr__, _dir, _ = lazy_exports(
    "centernet.distributed",
    {
        "ClusterLostError": "cluster",
        "NodeInfo": "cluster",
        "connect": "cluster",
        "require_ray": "cluster",
        "ActorPlan": "planning",
        "PlacementError": "planning",
        "plan": "planning",
        "DetectJob": "actors",
        "ImageStatus": "detect",
        "RayRun": "detect",
        "detect_on_ray": "detect",
        "merge_shards": "shards",
        "read_entries": "shards",
        "APP_NAME": "serve",
        "ReplicaConfig": "serve",
        "ServeScale": "serve",
        "deploy_on_ray_serve": "serve",
        "ray_serve_batcher_type": "serve",
        "stop_ray_serve": "serve",
    },
)
