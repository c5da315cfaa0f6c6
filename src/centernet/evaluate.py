"""COCO box mAP with pycocotools: the 12 standard AP/AR numbers."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from centernet.errors import MissingDependencyError

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
