"""Training targets: peaks of exactly 1 at box centres, sizes and offsets at those cells."""

from __future__ import annotations

import math

import numpy as np
import pytest

from centernet.training.targets import build_targets, draw_gaussian, gaussian_radius

pytest.importorskip("torch")


def test_peaks_of_one_at_centres():
    boxes = np.array([[10.2, 20.6, 30.2, 28.6], [40.0, 5.0, 44.0, 9.0], [0, 0, 63, 63]], np.float32)
    classes = np.array([0, 2, 1])
    t = build_targets(boxes, classes, 3, (64, 48))
    assert t.hm.shape == (3, 48, 64)
    centres = [(20.2, 24.6), (42.0, 7.0), (31.5, 31.5)]
    boxes_clipped = [(20.0, 8.0), (4.0, 4.0), (63.0, 47.0)]  # the third is clipped to the map
    for k, ((cx, cy), cls) in enumerate(zip(centres, classes)):
        cy = min(cy, (0 + 47) / 2) if k == 2 else cy
        x, y = int(cx), int(cy)
        assert t.hm[cls, y, x] == 1.0
        assert (t.hm[cls] == 1.0).sum() == 1  # one peak per object of that class here
        assert t.ind[k] == y * 64 + x
        assert t.reg[k] == pytest.approx([cx - x, cy - y], abs=1e-5)
        assert t.wh[k] == pytest.approx(boxes_clipped[k], abs=1e-5)
    assert t.mask.tolist()[:4] == [1, 1, 1, 0]
    assert t.hm.max() == 1.0 and t.hm.min() == 0.0


def test_gaussian_falls_off_with_the_cornernet_radius():
    radius = int(gaussian_radius(math.ceil(8.0), math.ceil(20.0)))
    # third root of the original: (-2*0.7*28 + sqrt((2*0.7*28)**2 + 4*2.8*0.3*160)) / 2 = 3.17
    assert radius == 3
    hm = np.zeros((9, 9), np.float32)
    draw_gaussian(hm, (4, 4), radius)
    sigma = (2 * radius + 1) / 6
    assert hm[4, 4 + 1] == pytest.approx(math.exp(-1 / (2 * sigma**2)))
    assert hm[4, 4 + radius + 1] == 0.0  # nothing beyond the radius
    assert np.array_equal(hm, hm.T) and np.array_equal(hm, hm[::-1, ::-1])


def test_degenerate_and_outside_boxes_are_skipped():
    boxes = np.array([[5, 5, 5, 9], [-20, -20, -10, -10], [70, 1, 90, 9]], np.float32)
    t = build_targets(boxes, np.array([0, 0, 0]), 1, (64, 64))
    assert t.mask.sum() == 0 and t.hm.max() == 0
