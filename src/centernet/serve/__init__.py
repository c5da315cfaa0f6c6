"""The HTTP front: ``centernet serve``.

A front over the Detector's stages, not a second pipeline: requests are read and
pre-processed by ``Detector.stages.prepare``, batched across clients by ``batcher.py``
(``stages.assemble`` and ``stages.run``), and turned into boxes by
``stages.to_detections``. Modules:

- ``config.py``   ServeConfig: model, limits, batching, access, transport (no web framework)
- ``service.py``  DetectionService: images in, per-image results out; admission, timeouts
- ``batcher.py``  DynamicBatcher: up to max-batch images, at most max-delay of waiting
- ``oip.py``      the Open Inference Protocol (KServe v2) request/response codec
- ``metrics.py``  Prometheus metrics of one server
- ``app.py``      routes (FastAPI), limits, JSON errors
- ``auth.py``     API keys (Bearer), the routes open without one, CORS
- ``deadline.py`` an absolute deadline for receiving a request (408)
- ``page.py``     the page at GET / (``static/``: HTML, JS, CSS)
- ``server.py``   uvicorn on a bound socket; SIGTERM drains in-flight requests
- ``loadtest.py`` a bounded HTTP load generator (standard library only)
- ``openloop.py`` an open-loop load: requests at a set rate, phase after phase
- ``client.py``   a small Python client for /v1/detect (standard library only)

Importing this package imports nothing heavy; the web framework is the ``serve`` extra.
"""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "AccessConfig": "config",
        "BatchConfig": "config",
        "TransportConfig": "config",
        "create_app": "app",
        "ReceiveDeadline": "deadline",
        "LimitsConfig": "config",
        "ServeConfig": "config",
        "DetectionService": "service",
        "LoadConfig": "loadtest",
        "load_uploads": "loadtest",
        "run_load": "loadtest",
        "Phase": "openloop",
        "run_phases": "openloop",
    },
)
