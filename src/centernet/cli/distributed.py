"""``detect --ray`` and ``eval --ray``: the same commands, run by an actor pool on Ray.

The options, the stderr report of unreadable files, detections.json and the exit status
are those of the local commands; only where the work runs differs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from centernet.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    detector_config,
    engine_config,
    positive_int,
    report_skipped,
)
from centernet.cli.progress import bar as progress_bar
from centernet.errors import CenterNetError


def add_ray_args(parser: argparse.ArgumentParser) -> None:
    """--ray and its settings (the `ray` extra)."""
    group = parser.add_argument_group("Ray (pip install 'centernet-deploy[ray]')")
    group.add_argument("--ray", action="store_true", help="run on Ray: an actor pool")
    group.add_argument(
        "--ray-address", default=None, help="join this cluster (default: start a local Ray)"
    )
    group.add_argument(
        "--ray-workers", type=positive_int, default=None, help="actors (default: CPUs / 2)"
    )
    group.add_argument("--ray-batch", type=positive_int, default=16, help="images per actor call")


def _settings(args: argparse.Namespace):
    from centernet.distributed.ray import RayConfig

    return RayConfig(
        address=args.ray_address,
        workers=args.ray_workers,
        batch=args.ray_batch,
        threads=args.threads,
        gpus_per_worker=1.0 if args.device == "cuda" else 0.0,
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


def _run(paths: list[str], job, args: argparse.Namespace, desc: str):
    from centernet.distributed.ray import detect_on_ray

    with progress_bar(len(paths), desc, unit="img") as bar:
        return detect_on_ray(
            [str(Path(p).resolve()) if Path(p).exists() else p for p in paths],
            job,
            _settings(args),
            on_progress=lambda done, total: bar.update(done - bar.n),
        )


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
    job = _job(
        args, category_ids_for(spec.class_names, annotations), ids_by_name, out,
        args.threshold, args.max_dets,
    )  # fmt: skip
    started = time.perf_counter()
    statuses, used = _run(inputs.paths, job, args, "detect (ray)")
    failed = 0
    for status, path in zip(statuses, inputs.paths):
        if status.error:
            failed += 1
            report_skipped(path, status.error)
    merge_shards(out, out / "detections.json")
    _add_class_fields(out / "detections.json", job.category_ids, spec.class_names)
    seconds = time.perf_counter() - started
    done, unmatched = len(inputs.paths) - failed, len(inputs.unmatched)
    boxes = sum(status.boxes for status in statuses)
    nodes = len({status.node for status in statuses})
    print(
        f"detected {done} of {len(inputs.paths)} images in {seconds:.1f} s "
        f"({done / max(seconds, 1e-9):.1f} img/s): {boxes} boxes >= {args.threshold}; "
        f"{failed} unreadable"
        + (f", {unmatched} folders/patterns matched nothing" if unmatched else "")
        + f"; wrote {out / 'detections.json'} (shards in {out / 'shards'})"
        + f"; Ray: {used.workers} actors x {used.threads} threads on {nodes} node(s)"
    )
    return EXIT_SOME_FAILED if failed or unmatched else EXIT_OK


def _add_class_fields(path: Path, category_ids, class_names: list[str]) -> None:
    """The merged results with ``class_index`` and ``class_name`` beside each
    ``category_id``, as the local command writes them (the actors write only the id)."""
    from centernet.datasets.coco import with_class_fields

    entries = json.loads(path.read_text())
    path.write_text(json.dumps(with_class_fields(entries, category_ids, class_names)))


def evaluate_with_ray(args: argparse.Namespace, annotations, out: Path):
    """The EvalOutcome of ``eval`` computed on Ray; also the ModelSpec."""
    from centernet.datasets.coco import category_ids_for, with_class_fields
    from centernet.datasets.coco_scoring import coco_evaluate
    from centernet.distributed.ray import read_shards, require_ray
    from centernet.measure.evaluate import EvalOutcome

    require_ray()
    spec = _spec(args)
    images = annotations.images[: args.limit] if args.limit else annotations.images
    paths = [str(Path(args.images) / im.file_name) for im in images]
    ids = {im.file_name: im.id for im in images}
    job = _job(args, category_ids_for(spec.class_names, annotations), ids, out, 0.0, 100)
    started = time.perf_counter()
    statuses, _ = _run(paths, job, args, "eval (ray)")
    failures = [(path, s.error) for path, s in zip(paths, statuses) if s.error]
    results = with_class_fields(list(read_shards(out)), job.category_ids, spec.class_names)
    seconds = time.perf_counter() - started
    stats = coco_evaluate(annotations.path, results, image_ids=[im.id for im in images])
    return EvalOutcome(stats, results, len(images), failures, seconds), spec
