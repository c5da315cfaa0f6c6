"""Vectorised decode against a slow, obvious reference that loops over peaks."""

from __future__ import annotations

import numpy as np
import pytest

from centernet.runtime.postprocess import PostprocessConfig, postprocess
from centernet.runtime.preprocess import PreprocessConfig, make_letterbox


def slow_max_pool3(hm: np.ndarray) -> np.ndarray:
    """3x3, stride 1, padding 1 max-pool by explicit neighbourhood loops."""
    channels, height, width = hm.shape
    out = np.empty_like(hm)
    for c in range(channels):
        for y in range(height):
            for x in range(width):
                out[c, y, x] = hm[c, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].max()
    return out


def slow_decode(hm, wh, reg, width, height, keep_res, k=100, threshold=0.0, down=4):
    """ctdet_decode + ctdet_post_process, one peak at a time, geometry from first principles."""
    channels, out_h, out_w = hm.shape
    peaks = []
    for c in range(channels):
        for y in range(out_h):
            for x in range(out_w):
                window = hm[c, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
                if hm[c, y, x] >= window.max():
                    peaks.append((float(hm[c, y, x]), c, y, x))
    peaks.sort(key=lambda p: -p[0])
    if keep_res:  # scale 1, centre (w//2, h//2) -> centre of the padded input
        in_w, in_h = (width | 31) + 1, (height | 31) + 1
        k_in, ox, oy = 1.0, width // 2 - in_w / 2, height // 2 - in_h / 2
    else:  # square of side max(w, h) around the image centre -> 512 x 512
        side = max(width, height)
        k_in, ox, oy = side / 512, width / 2 - side / 2, height / 2 - side / 2
    boxes = []
    for score, c, y, x in peaks[:k]:
        if score < threshold:
            continue
        cx, cy = x + reg[0, y, x], y + reg[1, y, x]
        x1, x2 = cx - wh[0, y, x] / 2, cx + wh[0, y, x] / 2
        y1, y2 = cy - wh[1, y, x] / 2, cy + wh[1, y, x] / 2
        corners = [
            ox + x1 * down * k_in,
            oy + y1 * down * k_in,
            ox + x2 * down * k_in,
            oy + y2 * down * k_in,
        ]
        boxes.append((corners, score, c))
    return boxes


def random_outputs(rng, batch, channels, height, width):
    hm = rng.random((batch, channels, height, width), dtype=np.float32)
    hm_max = np.stack([slow_max_pool3(h) for h in hm])
    wh = rng.uniform(0, 30, (batch, 2, height, width)).astype(np.float32)
    reg = rng.random((batch, 2, height, width), dtype=np.float32)
    return {"hm_max": hm_max, "hm": hm, "wh": wh, "reg": reg}


def assert_same(got, expected):
    assert len(got) == len(expected)
    assert np.allclose(got.xyxy, np.array([b for b, _, _ in expected]).reshape(-1, 4), atol=2e-3)
    assert np.array_equal(got.scores, np.array([s for _, s, _ in expected], np.float32))
    assert np.array_equal(got.class_ids, np.array([c for _, _, c in expected]))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("keep_res", [False, True])
def test_decode_equals_slow_reference(batch, keep_res):
    rng = np.random.default_rng(batch + 10 * keep_res)
    if keep_res:  # different originals that pad to one input size (96 x 64), so they batch
        sizes = [(90, 60), (80, 50), (70, 40)][:batch]
    else:
        sizes = [(906, 600), (480, 640), (300, 1000)][:batch]
    config = PreprocessConfig(keep_res=keep_res)
    boxes = [make_letterbox(w, h, config) for w, h in sizes]
    in_w, in_h = boxes[0].input_size
    assert all(box.input_size == (in_w, in_h) for box in boxes)
    outputs = random_outputs(rng, batch, 4, in_h // 4, in_w // 4)
    got = postprocess(outputs, boxes)
    assert len(got) == batch
    for i, (w, h) in enumerate(sizes):
        o = {k: v[i] for k, v in outputs.items()}
        assert_same(got[i], slow_decode(o["hm"], o["wh"], o["reg"], w, h, keep_res))


def test_threshold_and_max_dets():
    rng = np.random.default_rng(7)
    outputs = random_outputs(rng, 1, 2, 24, 24)
    box = make_letterbox(640, 480, PreprocessConfig())
    o = {k: v[0] for k, v in outputs.items()}
    got = postprocess(outputs, [box], PostprocessConfig(threshold=0.9))[0]
    assert_same(got, slow_decode(o["hm"], o["wh"], o["reg"], 640, 480, False, threshold=0.9))
    assert got.scores.min() >= 0.9
    got = postprocess(outputs, [box], PostprocessConfig(max_dets=7))[0]
    assert_same(got, slow_decode(o["hm"], o["wh"], o["reg"], 640, 480, False, k=7))


def test_padding_rows_are_ignored_and_plateaus_count_as_peaks():
    # Two images' worth of maps, one letterbox: the second row is batch padding.
    hm = np.zeros((2, 1, 8, 8), np.float32)
    hm[0, 0, 2, 3] = 0.8
    hm[0, 0, 5, 5:7] = 0.5  # a plateau of two equal cells: both are peaks, as upstream
    hm_max = np.stack([slow_max_pool3(h) for h in hm])
    outputs = {
        "hm_max": hm_max,
        "hm": hm,
        "wh": np.ones((2, 2, 8, 8), np.float32),
        "reg": np.zeros((2, 2, 8, 8), np.float32),
    }
    got = postprocess(outputs, [make_letterbox(32, 32, PreprocessConfig(input_size=(32, 32)))])
    assert len(got) == 1
    assert got[0].scores.tolist() == pytest.approx([0.8, 0.5, 0.5])
    # centre (3, 2) in cells -> (12, 8) px; wh 1 cell -> 4 px (input size = original size)
    assert got[0].xyxy[0] == pytest.approx([10, 6, 14, 10], abs=1e-4)


@pytest.mark.parametrize("levels", [None, 16])
def test_large_maps_take_the_score_floor_and_stay_exact(levels):
    """Maps large enough for the sampled score floor (20 classes x 32 x 32), with and
    without many exact ties (scores on 16 levels, more than K at the top score), against
    the slow reference."""
    from centernet.runtime.postprocess import _score_floor

    rng = np.random.default_rng(11)
    outputs = random_outputs(rng, 1, 20, 32, 32)
    if levels:
        hm = np.round(outputs["hm"] * levels) / levels
        outputs["hm"] = hm.astype(np.float32)
        outputs["hm_max"] = np.stack([slow_max_pool3(h) for h in outputs["hm"]])
    o = {k: v[0] for k, v in outputs.items()}
    assert _score_floor(o["hm"].reshape(-1), o["hm_max"].reshape(-1), 100) > 0  # taken
    box = make_letterbox(128, 128, PreprocessConfig())  # slow_decode's geometry: 512 input
    got = postprocess(outputs, [box])[0]
    # ties are broken by position (class, y, x), as the reference's stable sort does
    assert_same(got, slow_decode(o["hm"], o["wh"], o["reg"], 128, 128, False))
