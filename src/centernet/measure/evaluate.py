"""COCO box mAP with pycocotools: the 12 standard AP/AR numbers."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from centernet.errors import MissingDependencyError

if TYPE_CHECKING:
    from centernet.datasets.coco import CocoAnnotations
    from centernet.runtime.detector import Detector

COCO_STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)

COCO_STAT_LABELS = (
    "AP @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AP @[IoU=0.50      | area=all | maxDets=100]",
    "AP @[IoU=0.75      | area=all | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=large | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=1]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=10]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=large | maxDets=100]",
)


def coco_evaluate(
    annotation_file: str | Path, results: list[dict[str, Any]], image_ids: list[int] | None = None
) -> dict[str, float]:
    """Score COCO results (with image_id) against ``annotation_file``; -1 marks 'no data'.

    ``image_ids`` restricts scoring to the images that were run (``--limit``).
    pycocotools prints as it works; that output is swallowed, library code does not print.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise MissingDependencyError("pycocotools", "eval") from None
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(annotation_file))
        if not results:
            return dict.fromkeys(COCO_STAT_NAMES, 0.0)
        detections = ground_truth.loadRes(
            [{k: v for k, v in r.items() if k != "file_name"} for r in results]
        )
        evaluator = COCOeval(ground_truth, detections, "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats)}


@dataclass
class EvalOutcome:
    """COCO metrics of a detector on annotated images, with what it produced."""

    stats: dict[str, float]
    results: list[dict[str, Any]]
    images: int
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0


def evaluate_detector(
    detector: Detector,
    annotations: CocoAnnotations,
    image_dir: str | Path,
    limit: int | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> EvalOutcome:
    """Detect on the annotated images (first ``limit`` by id) and score them.

    ``detector`` should run at threshold 0 and 100 boxes, as COCO evaluation expects.
    ``progress`` may wrap the result stream (a progress bar); it must yield it unchanged.
    """
    from centernet.datasets.coco import category_ids_for, detections_to_coco

    images = annotations.images[:limit] if limit else annotations.images
    category_ids = category_ids_for(detector.spec.class_names, annotations)
    paths = [str(Path(image_dir) / im.file_name) for im in images]
    stream = detector.stream(paths)
    if progress is not None:
        stream = progress(stream)
    results: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    started = time.perf_counter()
    for image, result in zip(images, stream):
        if not result.ok:
            failures.append((result.source, result.error or "unreadable"))
            continue
        results += detections_to_coco(
            result.detections, category_ids, file_name=image.file_name, image_id=image.id
        )
    seconds = time.perf_counter() - started
    stats = coco_evaluate(annotations.path, results, image_ids=[im.id for im in images])
    return EvalOutcome(stats, results, len(images), failures, seconds)
