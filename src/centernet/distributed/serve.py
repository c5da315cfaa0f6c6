"""``serve --ray``: the ``centernet serve`` app as a Ray Serve deployment, on a fixed
number of replicas or autoscaled between two.

Each replica builds the plain server's FastAPI app over its own DetectionService, whose
batches Ray Serve's ``@serve.batch`` forms; routes, JSON, limits, metrics, API keys, CORS,
the page and the receive deadline are the plain server's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from centernet.distributed.cluster import connect
from centernet.distributed.ray import RayConfig

APP_NAME = "centernet"  # the Ray Serve application


def ray_serve_batcher_type() -> type:
    """A DynamicBatcher whose batches are formed by Ray Serve's ``@serve.batch`` (up to
    max-batch images, waiting at most max-delay) instead of an engine thread; admission,
    queue limits, decoding and metrics are the plain server's."""
    from ray import serve

    from centernet.serve.batcher import DynamicBatcher, Job

    class RayServeBatcher(DynamicBatcher):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            from concurrent.futures import ThreadPoolExecutor

            self._engine = ThreadPoolExecutor(1, thread_name_prefix="centernet-engine")
            self._batched = serve.batch(
                max_batch_size=self.max_batch,
                batch_wait_timeout_s=self.settings.max_delay_s,
            )(self._run_jobs)

        def start(self) -> None:  # no engine thread: @serve.batch calls _run_jobs
            pass

        def submit(self, job: Job) -> None:
            import asyncio

            asyncio.get_running_loop().create_task(self._batched(job))

        async def _run_jobs(self, jobs: list[Job]) -> list[None]:
            import asyncio

            live = self._claim(jobs)
            if live:  # the engine in a thread: the replica's event loop stays free
                await asyncio.get_running_loop().run_in_executor(
                    self._engine, self._run_batch, live
                )
            return [None] * len(jobs)

        def close(self) -> None:
            self._engine.shutdown(wait=True)
            super().close()

    return RayServeBatcher


@dataclass(frozen=True)
class ServeScale:
    """How many replicas: a fixed number, or autoscaling between two."""

    replicas: int = 1
    autoscale: tuple[int, int] | None = None  # (min, max)
    cpus_per_replica: float = 1.0


def deploy_on_ray_serve(
    config: Any, host: str, port: int, scale: ServeScale, settings: RayConfig
) -> str:
    """Run the ``centernet serve`` app as a Ray Serve deployment; its URL once ready.

    Each replica builds the same FastAPI app over its own DetectionService (the Ray Serve
    batcher), so routes, JSON, limits, metrics, API keys, CORS and the page are the plain
    server's; the config (keys included) travels to the replicas through Ray.
    """
    connect(settings)
    from ray import serve

    def build_app():
        from centernet.serve.app import create_app
        from centernet.serve.service import DetectionService

        service = DetectionService(config, batcher_type=ray_serve_batcher_type())
        service.start()
        return create_app(service)

    class CenterNetReplica:
        pass

    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": scale.cpus_per_replica}}
    if scale.autoscale:
        low, high = scale.autoscale
        options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high}
    else:
        options["num_replicas"] = scale.replicas
    deployment = serve.deployment(serve.ingress(build_app)(CenterNetReplica), **options)
    # API keys, CORS, the receive deadline and the page are the app's own (create_app);
    # TLS and the keep-alive timeout belong to Ray Serve's HTTP proxy
    transport = config.transport
    http_options: dict[str, Any] = {
        "host": host, "port": port, "keep_alive_timeout_s": transport.keep_alive_s
    }  # fmt: skip
    if transport.tls:
        http_options["ssl_certfile"] = transport.ssl_certfile
        http_options["ssl_keyfile"] = transport.ssl_keyfile
    serve.start(http_options=http_options)
    serve.run(deployment.bind(), name=APP_NAME, route_prefix="/", blocking=False)
    return f"{'https' if transport.tls else 'http'}://{host}:{port}"


def stop_ray_serve() -> None:
    """Delete the application first (its replicas finish their requests), then stop
    Serve: ``serve.shutdown`` alone waited 30 s for the controller and gave up."""
    from ray import serve

    serve.delete(APP_NAME)
    serve.shutdown()
