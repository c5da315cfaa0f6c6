"""COCO AP and the paired bootstrap of an AP difference, fast enough for 1,000 resamples.

An AP difference between two builds is only as good as the images behind it: the noise
is the spread of the difference over bootstrap resamples of the images, with both builds
scored on the same resample (paired). Re-running pycocotools per resample costs seconds;
here pycocotools matches each image once (``COCOeval.evaluate``), and a resample
recombines the per-image matches exactly as ``COCOeval.accumulate`` does (area "all",
100 detections per image, 101 recall points): milliseconds per resample. The whole-set
value is checked equal to pycocotools' own AP at construction.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from centernet.errors import CenterNetError, MissingDependencyError

MAX_DETECTIONS = 100


class PerImageAP:
    """AP@[.5:.95] of one set of results on one ground truth, for any resample of its
    images (indices into the ground truth's images in id order, repeats allowed)."""

    def __init__(self, ground_truth: dict[str, Any], results: list[dict[str, Any]]) -> None:
        try:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        except ImportError:
            raise MissingDependencyError("pycocotools", "eval") from None
        with contextlib.redirect_stdout(io.StringIO()):
            truth = COCO()
            truth.dataset = ground_truth
            truth.createIndex()
            evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        params = evaluator.params
        self.images = len(params.imgIds)
        self.recall_points = np.asarray(params.recThrs)
        self.thresholds = len(params.iouThrs)
        self.iou_thresholds = [float(t) for t in params.iouThrs]  # 0.50, 0.55, ... 0.95
        areas = len(params.areaRng)
        self._by_category = [
            [
                _matches(evaluator.evalImgs[k * areas * self.images + i])
                for i in range(self.images)
            ]
            for k in range(len(params.catIds))
        ]
        self.pycocotools_ap = float(evaluator.stats[0])
        if abs(self.ap() - self.pycocotools_ap) > 1e-9:
            raise CenterNetError("AP recombined per image differs from pycocotools' own")

    def ap(self, sample: Sequence[int] | np.ndarray | None = None) -> float:
        """AP on the images ``sample`` (all by default); -1 when nothing can be scored."""
        values = self._by_category_and_threshold(sample)
        return float(values.mean()) if values.size else -1.0

    def ap_per_threshold(self, sample: Sequence[int] | np.ndarray | None = None) -> list[float]:
        """AP at each IoU threshold (``iou_thresholds``), the mean over categories: where a
        loss of AP@[.5:.95] lies (objects missed or mis-scored show at every threshold, box
        edges off by a fraction of a pixel only at 0.9-0.95). -1 each when nothing scores."""
        values = self._by_category_and_threshold(sample)
        if not values.size:
            return [-1.0] * self.thresholds
        return [float(v) for v in values.mean(axis=0)]

    def _by_category_and_threshold(self, sample: Sequence[int] | np.ndarray | None) -> np.ndarray:
        """(categories with positives, thresholds): the precision averaged over recall."""
        indices = range(self.images) if sample is None else sample
        rows = []
        for images in self._by_category:
            chosen = [images[i] for i in indices if images[i] is not None]
            positives = sum(c.positives for c in chosen)
            if not positives:
                continue
            order = np.argsort(-np.concatenate([c.scores for c in chosen]), kind="mergesort")
            tps = np.cumsum(np.concatenate([c.true for c in chosen], 1)[:, order], 1)
            fps = np.cumsum(np.concatenate([c.false for c in chosen], 1)[:, order], 1)
            rows.append([
                self._precision_at_recall(tp, fp, positives).mean()
                for tp, fp in zip(tps.astype(float), fps.astype(float))
            ])  # fmt: skip
        return np.asarray(rows, dtype=float).reshape(len(rows), self.thresholds)

    def _precision_at_recall(self, tp: np.ndarray, fp: np.ndarray, positives: int) -> np.ndarray:
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.spacing(1))
        if precision.size:  # the envelope: best precision at this recall or beyond
            precision = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.zeros(len(self.recall_points))
        index = np.searchsorted(recall, self.recall_points, side="left")
        valid = index < len(precision)
        at[valid] = precision[index[valid]]
        return at


@dataclass(frozen=True)
class _ImageMatches:
    scores: np.ndarray  # (D,) sorted descending
    true: np.ndarray  # (T, D) matched and not ignored, per IoU threshold
    false: np.ndarray  # (T, D) unmatched and not ignored
    positives: int  # ground-truth boxes that count


def _matches(entry: dict | None) -> _ImageMatches | None:
    if entry is None:
        return None
    scores = np.asarray(entry["dtScores"][:MAX_DETECTIONS])
    order = np.argsort(-scores, kind="mergesort")
    matched = entry["dtMatches"][:, :MAX_DETECTIONS][:, order].astype(bool)
    ignored = entry["dtIgnore"][:, :MAX_DETECTIONS][:, order].astype(bool)
    positives = int(np.count_nonzero(np.asarray(entry["gtIgnore"]) == 0))
    return _ImageMatches(scores[order], matched & ~ignored, ~matched & ~ignored, positives)


@dataclass(frozen=True)
class APDifference:
    """``b`` minus ``a``: the whole-set difference and its paired bootstrap spread."""

    difference: float
    low: float  # 2.5th percentile over resamples
    high: float  # 97.5th
    sd: float
    rounds: int

    def points(self) -> str:
        """E.g. '-0.13 [-0.31, -0.01]' in AP points."""
        return f"{self.difference * 100:+.2f} [{self.low * 100:+.2f}, {self.high * 100:+.2f}]"


def paired_difference(
    a: PerImageAP, b: PerImageAP, rounds: int = 1000, seed: int = 0
) -> APDifference:
    """AP(b) - AP(a) on the same images, with its 95 % paired bootstrap interval."""
    if a.images != b.images:
        raise CenterNetError("a paired difference needs both scored on the same images")
    rng = np.random.default_rng(seed)
    samples = (rng.integers(0, a.images, a.images) for _ in range(rounds))
    diffs = np.array([b.ap(s) - a.ap(s) for s in samples])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return APDifference(b.ap() - a.ap(), float(low), float(high), float(diffs.std()), rounds)
