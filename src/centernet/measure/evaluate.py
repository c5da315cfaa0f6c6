"""A Detector scored on annotated images: detect, turn the boxes into COCO results, and
the 12 standard AP/AR numbers (``datasets.coco_scoring``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from centernet.datasets.coco import CocoAnnotations
    from centernet.runtime.detector import Detector

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
    from centernet.datasets.coco_scoring import coco_evaluate

    images = annotations.images[:limit] if limit else annotations.images
    category_ids = category_ids_for(detector.spec.class_names, annotations)
    paths = [str(Path(image_dir) / im.file_name) for im in images]
    stream = detector.stream(paths)
    if progress is not None:
        stream = progress(stream)
    results: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    started = time.perf_counter()
    for result, image in zip(stream, images):  # the stream first: it runs to its end
        if not result.ok:
            failures.append((result.source, result.error or "unreadable"))
            continue
        results += detections_to_coco(
            result.detections,
            category_ids,
            file_name=image.file_name,
            image_id=image.id,
            class_names=detector.spec.class_names,
        )
    seconds = time.perf_counter() - started
    stats = coco_evaluate(annotations.path, results, image_ids=[im.id for im in images])
    return EvalOutcome(stats, results, len(images), failures, seconds)
