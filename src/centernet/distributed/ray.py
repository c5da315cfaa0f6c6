"""Beyond one machine: batch detection on Ray Data, and the server on Ray Serve.

The per-image work stays the Detector's (read, pre-process, engine, decode); Ray only
schedules it. Batch detection: an actor pool, one Detector per actor opened once, each
batch of ``batch`` consecutive images written by its actor as one shard
(``OUT/shards/NNNNNNNNNN.json``, COCO results in input order), so the driver only sees
small per-image status rows and can merge the shards in order into ``detections.json``
without holding every box at once.

``ray`` is the optional extra ``ray``; nothing here imports it before it is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from centernet.engines.base import EngineConfig
from centernet.errors import CenterNetError, MissingDependencyError
from centernet.runtime.detector import DetectorConfig

SHARDS = "shards"
APP_NAME = "centernet"  # the Ray Serve application


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run."""

    address: str | None = None  # None: start a local Ray; else join this cluster
    workers: int | None = None  # actors; None: one per ``threads`` CPUs of the cluster
    batch: int = 16  # images per actor call (and per shard)
    threads: int | None = None  # engine threads per actor; None: CPUs / workers
    gpus_per_worker: float = 0.0  # --device cuda: Ray places each actor on a GPU


@dataclass(frozen=True)
class DetectJob:
    """What each actor needs to turn a batch of paths into COCO results."""

    model: str
    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(threshold=0.3))
    category_ids: tuple[int, ...] = ()
    image_ids: dict[str, int] = field(default_factory=dict)  # file name -> COCO image id
    out: str = ""  # shards go to OUT/shards
    save_images: bool = False  # annotated copies to OUT/images


@dataclass(frozen=True)
class ImageStatus:
    """One input's outcome as the driver sees it (the boxes stay in the shards)."""

    index: int
    source: str
    error: str | None
    boxes: int
    node: str  # the Ray node that ran it


def require_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None
    return ray


def connect(settings: RayConfig) -> dict[str, float]:
    """Join the cluster at ``settings.address`` or start a local one; its resources."""
    ray = require_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
        }
        if settings.address:
            kwargs["address"] = settings.address
        else:
            kwargs["num_cpus"] = os.cpu_count() or 1
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise CenterNetError(
                f"cannot join the Ray cluster at {settings.address}: {exc}"
            ) from None
    return dict(ray.cluster_resources())


def plan(settings: RayConfig, resources: dict[str, float]) -> RayConfig:
    """Workers and threads that fill the cluster's CPUs without oversubscribing them."""
    cpus = max(1, int(resources.get("CPU", 1)))
    workers = settings.workers or max(1, cpus // (settings.threads or 2))
    threads = settings.threads or max(1, cpus // workers)
    return replace(settings, workers=workers, threads=threads)


class _BatchDetector:
    """A Ray Data actor: one Detector, opened once; each call detects one batch of paths
    and writes its shard."""

    def __init__(self, job: DetectJob) -> None:
        from centernet.runtime.detector import Detector

        self.job = job
        self.detector = Detector(job.model, job.detector)
        import ray

        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from centernet.datasets.coco import detections_to_coco

        indices = [int(i) for i in batch["index"]]
        paths = [str(p) for p in batch["path"]]
        entries: list[dict] = []
        rows: dict[str, list] = {"index": [], "source": [], "error": [], "boxes": [], "node": []}
        for index, result in zip(indices, self.detector.stream(paths)):
            boxes = 0
            if result.ok:
                name = Path(result.source).name
                entries += detections_to_coco(
                    result.detections,
                    list(self.job.category_ids),
                    file_name=name,
                    image_id=self.job.image_ids.get(name),
                )
                boxes = len(result.detections)
                if self.job.save_images:
                    self._save(result, index)
            rows["index"].append(index)
            rows["source"].append(result.source)
            rows["error"].append(result.error or "")
            rows["boxes"].append(boxes)
            rows["node"].append(self.node)
        shard = Path(self.job.out) / SHARDS / f"{indices[0]:010d}.json"
        shard.parent.mkdir(parents=True, exist_ok=True)
        temporary = shard.with_suffix(".tmp")
        temporary.write_text(json.dumps(entries))
        temporary.replace(shard)  # a shard is whole or absent
        return rows

    def _save(self, result: Any, index: int) -> None:
        import cv2

        from centernet.runtime.draw import draw_detections

        folder = Path(self.job.out) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        drawn = draw_detections(result.image, result.detections, self.detector.spec.class_names)
        name = Path(result.source)
        cv2.imwrite(str(folder / f"{name.stem}_{index}{name.suffix}"), drawn)


def detect_on_ray(
    paths: Sequence[str],
    job: DetectJob,
    settings: RayConfig,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ImageStatus], RayConfig]:
    """Run ``job`` over ``paths`` on an actor pool; per-image status in input order, and
    the settings used. The boxes are in the shards (``merge_shards``)."""
    require_ray()
    settings = plan(settings, connect(settings))
    import logging

    from ray import data as ray_data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the driver reports progress
    context = ray_data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True
    # start once every actor has its model open: work spreads over the whole pool (and
    # every node) instead of going to whichever actor was ready first
    context.wait_for_min_actors_s = 300
    shards = Path(job.out) / SHARDS
    if shards.is_dir():  # shards of an earlier run would be merged with this one's
        for stale in shards.glob("*.json"):
            stale.unlink()
    options = replace(job.detector.options or EngineConfig(), threads=settings.threads)
    job = replace(job, detector=replace(job.detector, options=options))
    items = [{"index": i, "path": p} for i, p in enumerate(paths)]
    dataset = ray_data.from_items(items, override_num_blocks=max(1, len(items) // settings.batch))
    actor_options: dict[str, Any] = {"num_cpus": settings.threads}
    if settings.gpus_per_worker:
        actor_options["num_gpus"] = settings.gpus_per_worker
    detected = dataset.map_batches(
        _BatchDetector,
        fn_constructor_args=(job,),
        batch_size=settings.batch,
        concurrency=settings.workers,
        batch_format="numpy",
        **actor_options,
    )
    statuses: list[ImageStatus] = []
    for rows in detected.iter_batches(batch_size=None, batch_format="numpy"):
        for index, source, error, boxes, node in zip(
            rows["index"], rows["source"], rows["error"], rows["boxes"], rows["node"]
        ):
            statuses.append(
                ImageStatus(int(index), str(source), str(error) or None, int(boxes), str(node))
            )
        if on_progress:
            on_progress(len(statuses), len(paths))
    statuses.sort(key=lambda status: status.index)
    return statuses, settings


def merge_shards(out: str | Path, destination: str | Path) -> int:
    """Concatenate the shards of ``out`` in input order into one COCO results file,
    written as ``json.dumps`` of the whole list would be, one shard in memory at a time.
    Returns the number of entries."""
    shards = sorted((Path(out) / SHARDS).glob("*.json"))
    count = 0
    with open(destination, "w", encoding="utf-8") as merged:
        merged.write("[")
        for shard in shards:
            entries = json.loads(shard.read_text())
            for entry in entries:
                merged.write((", " if count else "") + json.dumps(entry))
                count += 1
        merged.write("]")
    return count


def read_shards(out: str | Path) -> Iterator[dict]:
    """Every COCO entry of the shards, in input order (for eval)."""
    for shard in sorted((Path(out) / SHARDS).glob("*.json")):
        yield from json.loads(shard.read_text())


# -- Ray Serve ---------------------------------------------------------------------------


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
