"""Ray: detect/eval over a Ray Data actor pool (``--ray``), and the server as a Ray Serve
deployment (``serve --ray``). Needs the ``ray`` extra; nothing here imports Ray until used."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DetectJob": "ray",
        "RayConfig": "ray",
        "ServeScale": "ray",
        "deploy_on_ray_serve": "ray",
        "detect_on_ray": "ray",
        "merge_shards": "ray",
        "stop_ray_serve": "ray",
    },
)
