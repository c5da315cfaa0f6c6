"""COCO box scoring with pycocotools: the 12 standard AP/AR numbers of results against
ground truth, the one scoring function of the package (``eval``, the report and the
int8-mixed layer search all call it). pycocotools prints as it works; that output is
swallowed, library code does not print."""

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
    ground_truth: str | Path | dict[str, Any],
    results: list[dict[str, Any]],
    image_ids: list[int] | None = None,
) -> dict[str, float]:
    """Score COCO results (with image_id) against ground truth: an annotation file, or a
    COCO dataset dict (``images``, ``annotations``, ``categories``); -1 marks 'no data'.

    ``image_ids`` restricts scoring to the images that were run (``--limit``).
    """
    try:
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise MissingDependencyError("pycocotools", "eval") from None
    with contextlib.redirect_stdout(io.StringIO()):
        truth = _coco(ground_truth)
        if not results:
            return dict.fromkeys(COCO_STAT_NAMES, 0.0)
        detections = truth.loadRes(
            [{k: v for k, v in r.items() if k != "file_name"} for r in results]
        )
        evaluator = COCOeval(truth, detections, "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats)}


def _coco(ground_truth: str | Path | dict[str, Any]) -> Any:
    from pycocotools.coco import COCO

    if not isinstance(ground_truth, dict):
        return COCO(str(ground_truth))
    truth = COCO()
    truth.dataset = ground_truth
    truth.createIndex()
    return truth
