"""Ray: detect/eval over an actor pool that outlives lost actors and nodes (``--ray``), and
the server as a Ray Serve deployment (``serve --ray``). Needs the ``ray`` extra; nothing
here imports Ray until used."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DetectJob": "actors",
        "RayConfig": "ray",
        "RayRun": "detect",
        "ReplicaConfig": "serve",
        "ServeScale": "serve",
        "deploy_on_ray_serve": "serve",
        "detect_on_ray": "detect",
        "merge_shards": "shards",
        "stop_ray_serve": "serve",
    },
)
