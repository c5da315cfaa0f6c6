"""``detect --ray`` and ``eval --ray``: the same commands, run by an actor pool on Ray.

The options, the stderr report of unreadable files, detections.json, detections.jsonl,
``--resume`` and the exit status are those of the local commands; only where the work
runs differs. On stderr besides: a line per lost actor or node (its work is redone).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from centernet.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SOME_FAILED,
    detector_config,
    engine_config,
    positive_int,
    report_skipped,
)
from centernet.cli.progress import bar as progress_bar
from centernet.errors import CenterNetError, as_command_line

LOG_NAME, RESULTS_NAME = "detections.jsonl", "detections.json"


def add_ray_args(parser: argparse.ArgumentParser) -> None:
    """--ray and its settings (the `ray` extra)."""
    group = parser.add_argument_group("Ray (pip install 'centernet-deploy[ray]')")
    group.add_argument("--ray", action="store_true", help="run on Ray: an actor pool")
    group.add_argument(
        "--ray-address", default=None,
        help="join this cluster, HOST:PORT of its head (default: start Ray on this machine)",
    )  # fmt: skip
    group.add_argument(
        "--ray-node-ip", default=None,
        help="this machine's address in the cluster (default: Ray's choice, or the "
        "--ray-address host when the cluster listens on loopback only)",
    )  # fmt: skip
    group.add_argument(
        "--ray-workers", type=positive_int, default=None,
        help="actors (default: per node, one per 2 CPUs, at least one; with --threads T, "
        "as many as fit)",
    )  # fmt: skip
    group.add_argument(
        "--ray-batch", type=positive_int, default=None,
        help="images per actor call and shard (default: about 32 shards, at most 16 each)",
    )  # fmt: skip
    group.add_argument(
        "--ray-lost-after-s", type=float, default=10.0,
        help="seconds the node this command runs on, or the cluster's head, may stay "
        "silent before the job stops (exit 2; --resume goes on) (default: 10)",
    )  # fmt: skip


def ray_settings(args: argparse.Namespace):
    """The RayConfig of a command line (``serve --ray`` takes only the address)."""
    from centernet.distributed.ray import RayConfig

    return RayConfig(
        address=args.ray_address,
        node_ip=getattr(args, "ray_node_ip", None),
        workers=getattr(args, "ray_workers", None),
        batch=getattr(args, "ray_batch", None),
        lost_after_s=getattr(args, "ray_lost_after_s", 10.0),
        threads=args.threads,
        gpus_per_worker=1.0 if getattr(args, "device", "cpu") == "cuda" else 0.0,
    )


def _spec(args: argparse.Namespace):
    """The model's ModelSpec without opening it here (the actors do)."""
    if Path(args.model).suffix in (".pth", ".pt"):
        from centernet.engines import open_engine

        return open_engine(args.model, args.engine, engine_config(args)).spec
    from centernet.modelfile.spec import read_file_spec

    if not Path(args.model).is_file():
        raise CenterNetError(f"{args.model}: no such model file")
    return read_file_spec(args.model)


def _job(args: argparse.Namespace, category_ids, image_ids, out: Path, threshold, max_dets):
    from centernet.distributed.ray import DetectJob

    return DetectJob(
        model=str(Path(args.model).resolve()),
        detector=detector_config(args, threshold, max_dets),
        category_ids=tuple(category_ids),
        image_ids=image_ids,
        out=str(out.resolve()),
        save_images=getattr(args, "save_images", False),
    )


def _run(sources: list[str], job, args: argparse.Namespace, desc: str, resume: bool = False):
    """The RayRun; lost actors and nodes on stderr as they happen. When the node this
    command runs on is lost, the error is printed and the process ends at once: Ray's own
    shutdown would wait a minute for the lost node, and the shards are on disk."""
    from centernet.distributed.ray import ClusterLostError, detect_on_ray

    def tell(message: str) -> None:
        print(f"centernet: {as_command_line(message)}", file=sys.stderr, flush=True)

    with progress_bar(len(sources), desc, unit="img") as shown:
        try:
            return detect_on_ray(
                sources, job, ray_settings(args), resume=resume,
                on_progress=lambda done, total: shown.update(done - shown.n), on_event=tell,
            )  # fmt: skip
        except ClusterLostError as exc:
            print(f"centernet: error: {as_command_line(str(exc))}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(EXIT_ERROR)


def detect_with_ray(args: argparse.Namespace) -> int:
    from centernet.datasets.coco import category_ids_for, load_annotations
    from centernet.distributed.ray import merge_shards, require_ray
    from centernet.runtime.images import collect_image_paths

    require_ray()  # before any work: without the extra, say how to install it
    if not args.images and not args.file_list:
        raise CenterNetError("no images given (files, folders, globs or --file-list)")
    inputs = collect_image_paths(args.images, args.file_list)
    spec = _spec(args)
    for item, reason in inputs.unmatched:
        report_skipped(item, reason)
    annotations = load_annotations(args.ann) if args.ann else None
    ids_by_name = {im.file_name: im.id for im in annotations.images} if annotations else {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_NAME).unlink(missing_ok=True)  # written again at the end, or not at all
    job = _job(
        args, category_ids_for(spec.class_names, annotations), ids_by_name, out,
        args.threshold, args.max_dets,
    )  # fmt: skip
    started = time.perf_counter()
    run = _run(inputs.paths, job, args, "detect (ray)", resume=args.resume)
    failed = 0
    for status in run.statuses:
        if status.error:
            failed += 1
            report_skipped(status.source, status.error)
    merge_shards(out, run.ranges, out / RESULTS_NAME, out / LOG_NAME)
    seconds = time.perf_counter() - started
    print(_summary(args, run, len(inputs.paths), failed, len(inputs.unmatched), seconds, out))
    return EXIT_SOME_FAILED if failed or inputs.unmatched else EXIT_OK


def _summary(args, run, total: int, failed: int, unmatched: int, seconds: float, out: Path) -> str:
    ran = total - run.done_before
    done = ran - failed
    per_node = ", ".join(f"{node[:8]}: {n}" for node, n in sorted(run.images_per_node().items()))
    lost = ""
    if run.lost_nodes or run.restarted:
        lost = f"; {len(run.lost_nodes)} node(s) lost, {run.restarted} actor(s) restarted"
    return (
        f"detected {done} of {ran} images in {seconds:.1f} s "
        f"({done / max(seconds, 1e-9):.1f} img/s): "
        f"{sum(s.boxes for s in run.statuses)} boxes >= {args.threshold}; {failed} unreadable"
        + (f", {unmatched} folders/patterns matched nothing" if unmatched else "")
        + (f"; {run.done_before} done before (--resume)" if args.resume else "")
        + f"; wrote {out / RESULTS_NAME} and {out / LOG_NAME} (shards in {out / 'shards'})"
        + f"; Ray: {run.plan.describe()}, images per node {per_node or 'none'}"
        + f", model load {run.load_s:.1f} s"
        + lost
    )


def evaluate_with_ray(args: argparse.Namespace, annotations, out: Path):
    """The EvalOutcome of ``eval`` computed on Ray; also the ModelSpec."""
    from centernet.datasets.coco import category_ids_for
    from centernet.datasets.coco_scoring import coco_evaluate
    from centernet.distributed.ray import read_entries, require_ray
    from centernet.measure.evaluate import EvalOutcome

    require_ray()
    spec = _spec(args)
    images = annotations.images[: args.limit] if args.limit else annotations.images
    paths = [str(Path(args.images) / im.file_name) for im in images]
    ids = {im.file_name: im.id for im in images}
    job = _job(args, category_ids_for(spec.class_names, annotations), ids, out, 0.0, 100)
    started = time.perf_counter()
    run = _run(paths, job, args, "eval (ray)")
    failures = [(s.source, s.error) for s in run.statuses if s.error]
    results = list(read_entries(out, run.ranges))
    seconds = time.perf_counter() - started
    stats = coco_evaluate(annotations.path, results, image_ids=[im.id for im in images])
    return EvalOutcome(stats, results, len(images), failures, seconds), spec
