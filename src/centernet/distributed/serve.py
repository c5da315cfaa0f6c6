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
from centernet.distributed.planning import PlacementError
from centernet.distributed.ray import RayConfig
from centernet.distributed.serve_proxy import proxy_environment

APP_NAME = "centernet"  # the Ray Serve application


def ray_serve_batcher_type() -> type:
    """A DynamicBatcher whose batches are formed by Ray Serve's ``@serve.batch`` (up to
    max-batch images, waiting at most max-delay) instead of an engine thread; admission,
    queue limits, decoding and metrics are the plain server's."""
    import numpy as np
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

        def warm_up(self) -> None:
            """Batch 1 only: a replica added under load should take requests soonest (the
            full batch's warm-up took 4x longer than the rest of its start on one CPU);
            the first full batch then pays the engine's set-up for its shape, about a
            quarter of one batch, once."""
            height, width = self.detector.spec.input_size
            rows = self.detector.engine.batch_size or 1
            self.detector.engine(np.zeros((rows, 3, height, width), dtype=np.float32))

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
class ReplicaConfig:
    """How many replicas: a fixed number, or autoscaled between two on the requests each
    replica holds (running and waiting). The delays are Ray Serve's, shortened from its
    LLM-minded defaults (30 s up, 600 s down) to a detection server's: a replica loads in
    seconds."""

    replicas: int = 1
    autoscale: tuple[int, int] | None = None  # (min, max)
    cpus_per_replica: float = 1.0  # = its engine threads
    target_ongoing: float = 2.0  # requests per replica the autoscaler aims at
    upscale_delay_s: float = 2.0  # load above target this long: a replica more
    downscale_delay_s: float = 20.0  # load below target this long: a replica less
    look_back_s: float = 4.0  # the autoscaler averages the load over this window
    metrics_interval_s: float = 0.5  # how often replicas and proxies report their load
    health_check_period_s: float = 2.0  # a replica that stops answering is replaced


ServeScale = ReplicaConfig  # the name before 0.2 (settings classes end in Config)


def deployment_options(config: Any, scale: ReplicaConfig) -> dict[str, Any]:
    """Ray Serve's options for the deployment: replicas, autoscaling, and the plain
    server's admission (one batch running, ``max_queue`` waiting, per replica; as many
    again waiting in a proxy for a free replica; beyond that 503, so latency stays
    bounded under overload)."""
    batching = config.batching
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": scale.cpus_per_replica},
        "max_ongoing_requests": batching.max_batch + batching.max_queue,
        "max_queued_requests": batching.max_queue,
        "health_check_period_s": scale.health_check_period_s,
    }
    if scale.autoscale:
        low, high = scale.autoscale
        options["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": scale.target_ongoing,
            "upscale_delay_s": scale.upscale_delay_s,
            "downscale_delay_s": scale.downscale_delay_s,
            "look_back_period_s": scale.look_back_s,
            "metrics_interval_s": scale.metrics_interval_s,
        }
    else:
        options["num_replicas"] = scale.replicas
    return options


def replica_config(config: Any) -> Any:
    """A replica's ServeConfig: Ray Serve's ``max_ongoing_requests`` bounds what a replica
    holds, so the replica's own queue takes all of it. Its own bound counts the images
    waiting while a batch runs, which can pass ``max_queue`` while the replica holds fewer
    than ``max_batch + max_queue`` requests (a small batch running, more waiting): it would
    answer 503 to requests Ray Serve had admitted."""
    from dataclasses import replace

    batching = config.batching
    return replace(
        config, batching=replace(batching, max_queue=batching.max_batch + batching.max_queue)
    )


def deploy_on_ray_serve(
    config: Any, host: str, port: int, scale: ReplicaConfig, settings: RayConfig
) -> str:
    """Run the ``centernet serve`` app as a Ray Serve deployment; its URL once ready.

    Each replica builds the same FastAPI app over its own DetectionService (the Ray Serve
    batcher), so routes, JSON, limits, metrics, API keys, CORS, the page and the body's
    receive deadline are the plain server's; the config (keys included) travels to the
    replicas through Ray. TLS, the keep-alive timeout and the header deadline belong to
    Ray Serve's HTTP proxies (``serve_proxy.py``).
    """
    nodes = connect(settings)
    largest = max((node.cpus for node in nodes), default=0)
    if scale.cpus_per_replica > largest:
        raise PlacementError(
            f'a replica with `threads="{scale.cpus_per_replica:g}"` needs '
            f"{scale.cpus_per_replica:g} CPUs on one node, and the largest node has "
            f"{largest:g}: give `threads` <= {largest:g}"
        )
    from ray import serve

    replica = replica_config(config)

    def build_app():
        from centernet.serve.app import create_app
        from centernet.serve.service import DetectionService

        service = DetectionService(replica, batcher_type=ray_serve_batcher_type())
        service.start()
        return create_app(service)

    class CenterNetReplica:
        pass

    deployment = serve.deployment(
        serve.ingress(build_app)(CenterNetReplica), **deployment_options(config, scale)
    )
    transport = config.transport
    http_options: dict[str, Any] = {
        "host": host, "port": port, "keep_alive_timeout_s": transport.keep_alive_s
    }  # fmt: skip
    if transport.tls:
        http_options["ssl_certfile"] = transport.ssl_certfile
        http_options["ssl_keyfile"] = transport.ssl_keyfile
    serve.start(
        http_options=http_options,
        controller_options={"runtime_env": {"env_vars": proxy_environment(config)}},
    )
    serve.run(deployment.bind(), name=APP_NAME, route_prefix="/", blocking=False)
    return f"{'https' if transport.tls else 'http'}://{host}:{port}"


def replica_states() -> dict[str, int]:
    """How many replicas of the deployment are in each state (``RUNNING``, ``STARTING``,
    ...), as Ray Serve reports them."""
    from ray import serve

    application = serve.status().applications.get(APP_NAME)
    if application is None:
        return {}
    counts: dict[str, int] = {}
    for deployment in application.deployments.values():
        for state, count in deployment.replica_states.items():
            key = str(getattr(state, "value", state))
            counts[key] = counts.get(key, 0) + count
    return counts


def stop_ray_serve() -> None:
    """Delete the application first (its replicas finish their requests), then stop
    Serve: ``serve.shutdown`` alone waited 30 s for the controller and gave up."""
    from ray import serve

    serve.delete(APP_NAME)
    serve.shutdown()
