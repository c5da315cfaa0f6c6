"""Named network outputs + Letterboxes -> Detections in original-image pixels.

With threshold 0 this equals the original ``ctdet_decode`` (K=100) + ``ctdet_post_process``
+ top-100 merge: peaks where ``hm == hm_max``, top-K over all classes and positions,
centre + ``reg`` offset, box = centre -/+ ``wh``/2 in output-map cells, then the inverse
affine of the output map. One deliberate difference: when a map has fewer than K peaks the
original pads with score-0 entries at arbitrary positions; those are not returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from centernet.types import Detections, Letterbox


@dataclass(frozen=True)
class PostprocessConfig:
    """How raw maps become boxes."""

    max_dets: int = 100  # K of ctdet_decode and max_per_image of the merge
    threshold: float = 0.0  # boxes scoring below this are dropped


#: Part of the maps searched first for a score floor (see ``_score_floor``).
_SAMPLE_FRACTION = 8


def _score_floor(flat: np.ndarray, flat_max: np.ndarray, k: int) -> float:
    """A score that at least ``k`` peaks reach, found in the first 1/8 of the maps; 0 if
    that part has fewer than ``k`` peaks.

    Every one of the k highest peaks scores at least this, so candidates below it can be
    dropped before the expensive part (listing and sorting up to ~10^5 candidate peaks at
    threshold 0) without changing the result, ties included.
    """
    part = len(flat) // _SAMPLE_FRACTION
    if k <= 0 or part < 8 * k:
        return 0.0
    sample = flat[:part]
    peaks = sample[sample == flat_max[:part]]
    if len(peaks) < k:
        return 0.0
    return float(np.partition(peaks, len(peaks) - k)[len(peaks) - k])


def _top_peaks(hm: np.ndarray, hm_max: np.ndarray, k: int, threshold: float) -> np.ndarray:
    """Flat indices (into C*H*W) of the k highest peaks, by descending score."""
    flat, flat_max = hm.reshape(-1), hm_max.reshape(-1)
    is_peak = flat == flat_max
    # at threshold 0 (COCO evaluation) every local maximum of noise is a candidate
    floor = threshold if threshold > 0 else _score_floor(flat, flat_max, k)
    if floor > 0:
        is_peak &= flat >= floor
    candidates = np.flatnonzero(is_peak)
    scores = flat[candidates]
    if len(candidates) > k:  # keep every candidate tied with the k-th, then cut after sorting
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        tied_or_better = scores >= kth
        candidates, scores = candidates[tied_or_better], scores[tied_or_better]
    order = np.lexsort((candidates, -scores))  # score desc, then index asc: deterministic
    candidates = candidates[order][:k]
    return candidates[flat[candidates] > 0]


def maps_to_detections(
    hm_max: np.ndarray,
    hm: np.ndarray,
    wh: np.ndarray,
    reg: np.ndarray,
    box: Letterbox,
    config: PostprocessConfig = PostprocessConfig(),
) -> Detections:
    """Decode one image's maps: ``hm``/``hm_max`` (C, H, W), ``wh``/``reg`` (2, H, W)."""
    _, height, width = hm.shape
    flat_idx = _top_peaks(hm, hm_max, config.max_dets, config.threshold)
    scores = hm.reshape(-1)[flat_idx].astype(np.float32)
    classes, pos = np.divmod(flat_idx, height * width)
    ys, xs = np.divmod(pos, width)
    offset = reg.reshape(2, -1)[:, pos]
    size = wh.reshape(2, -1)[:, pos]
    cx = xs.astype(np.float32) + offset[0]
    cy = ys.astype(np.float32) + offset[1]
    corners = np.stack(
        [cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2], axis=1
    ).astype(np.float32)
    xyxy = Letterbox.apply(box.output_to_original, corners.reshape(-1, 2)).reshape(-1, 4)
    return Detections(xyxy.astype(np.float32), scores, classes.astype(np.int64))


def topk_to_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    box: Letterbox,
    config: PostprocessConfig = PostprocessConfig(),
) -> Detections:
    """Decode one image of the in-graph top-K mode: ``boxes`` (K, 4) in output-map cells."""
    keep = (scores > 0) & (scores >= config.threshold)
    order = np.lexsort(
        (np.arange(len(scores)), -scores)
    )  # the graph's TopK is sorted; keep ties stable
    keep_sorted = order[keep[order]][: config.max_dets]
    corners = boxes[keep_sorted].astype(np.float32).reshape(-1, 2)
    xyxy = Letterbox.apply(box.output_to_original, corners).reshape(-1, 4)
    return Detections(
        xyxy.astype(np.float32),
        scores[keep_sorted].astype(np.float32),
        classes[keep_sorted].astype(np.int64),
    )


def postprocess(
    outputs: dict[str, np.ndarray],
    boxes: list[Letterbox],
    config: PostprocessConfig = PostprocessConfig(),
) -> list[Detections]:
    """Decode a batch; ``outputs`` are taken by name, and may hold padding past len(boxes)."""
    if "boxes" in outputs:  # in-graph top-K mode
        return [
            topk_to_detections(
                outputs["boxes"][i], outputs["scores"][i], outputs["classes"][i], box, config
            )
            for i, box in enumerate(boxes)
        ]
    hm_max, hm, wh, reg = (outputs[name] for name in ("hm_max", "hm", "wh", "reg"))
    return [
        maps_to_detections(hm_max[i], hm[i], wh[i], reg[i], box, config)
        for i, box in enumerate(boxes)
    ]
