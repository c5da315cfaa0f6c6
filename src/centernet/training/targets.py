"""CenterNet training targets: Gaussian heatmaps (CornerNet radius), size and offset at centres.

Written from the original ``ctdet`` dataset code: the radius keeps the original formula
(including its known deviation from CornerNet's, so that trained models behave the same),
peaks of exactly 1 at the integer centre cell, ``wh`` and the sub-cell offset ``reg``
stored at the centre's flat index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """The original ``gaussian_radius`` of a box of ``height`` x ``width`` output cells."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian_2d(radius: int) -> np.ndarray:
    """(2r+1)^2 Gaussian with sigma = diameter / 6, peak 1, negligible tails zeroed."""
    diameter = 2 * radius + 1
    sigma = diameter / 6
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g


def draw_gaussian(heatmap: np.ndarray, center: tuple[int, int], radius: int) -> None:
    """Max-blend a Gaussian of ``radius`` centred on integer cell ``center`` (x, y), in place."""
    gaussian = gaussian_2d(radius)
    x, y = center
    height, width = heatmap.shape
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    region = heatmap[y - top : y + bottom, x - left : x + right]
    patch = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    if min(region.shape) > 0 and min(patch.shape) > 0:
        np.maximum(region, patch, out=region)


@dataclass
class Targets:
    """One image's targets at output resolution, padded to ``max_objects`` entries."""

    hm: np.ndarray  # (C, H, W) float32
    wh: np.ndarray  # (max_objects, 2) float32, box size in output cells
    reg: np.ndarray  # (max_objects, 2) float32, centre minus its integer cell
    ind: np.ndarray  # (max_objects,) int64, flat index y * W + x of the centre cell
    mask: np.ndarray  # (max_objects,) float32, 1 for real entries


def build_targets(
    boxes: np.ndarray,
    classes: np.ndarray,
    num_classes: int,
    output_size: tuple[int, int],
    max_objects: int = 128,
) -> Targets:
    """Targets for ``boxes`` (N, 4) xyxy already in output-map coordinates.

    Boxes are clipped to the map; those left with no area are skipped, as upstream.
    """
    out_w, out_h = output_size
    hm = np.zeros((num_classes, out_h, out_w), np.float32)
    wh = np.zeros((max_objects, 2), np.float32)
    reg = np.zeros((max_objects, 2), np.float32)
    ind = np.zeros((max_objects,), np.int64)
    mask = np.zeros((max_objects,), np.float32)
    k = 0
    for box, cls in zip(np.asarray(boxes, np.float32), classes):
        if k == max_objects:
            break
        x1, x2 = np.clip(box[[0, 2]], 0, out_w - 1)
        y1, y2 = np.clip(box[[1, 3]], 0, out_h - 1)
        h, w = y2 - y1, x2 - x1
        if h <= 0 or w <= 0:
            continue
        radius = max(0, int(gaussian_radius(math.ceil(h), math.ceil(w))))
        center = np.array([(x1 + x2) / 2, (y1 + y2) / 2], np.float32)
        cell = center.astype(np.int32)
        draw_gaussian(hm[int(cls)], (int(cell[0]), int(cell[1])), radius)
        wh[k] = w, h
        ind[k] = cell[1] * out_w + cell[0]
        reg[k] = center - cell
        mask[k] = 1
        k += 1
    return Targets(hm=hm, wh=wh, reg=reg, ind=ind, mask=mask)
