"""Peaks, top-K and boxes on the device against the host's postprocess: equal, ties and
all (the device ranks a 64-bit key because torch.topk breaks ties arbitrarily)."""

from __future__ import annotations

import numpy as np
import pytest

from centernet.runtime.postprocess import PostprocessConfig, postprocess
from centernet.runtime.preprocess import PreprocessConfig, make_letterbox

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from centernet.runtime.device.postprocess import maps_to_top_boxes, top_peaks  # noqa: E402


def _maps(n: int, c: int, h: int, w: int, seed: int = 0, steps: float = 4.0):
    """Sigmoid maps with many exact ties (logits on a grid), max-pooled like DeployModel."""
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.standard_normal((n, c, h, w)).astype(np.float32)) * 3
    hm = torch.sigmoid(torch.round(logits * steps) / steps)
    wh = torch.from_numpy(rng.uniform(1, 20, (n, 2, h, w)).astype(np.float32))
    reg = torch.from_numpy(rng.uniform(0, 1, (n, 2, h, w)).astype(np.float32))
    return F.max_pool2d(hm, 3, 1, 1), hm, wh, reg


def _host(maps, boxes, config):
    named = dict(zip(("hm_max", "hm", "wh", "reg"), (m.numpy() for m in maps)))
    return postprocess(named, boxes, config)


@pytest.mark.parametrize(
    "config",
    [PostprocessConfig(100, 0.0), PostprocessConfig(100, 0.6), PostprocessConfig(7, 0.0)],
    ids=["K100", "threshold 0.6", "K7"],
)
def test_device_decode_equals_the_host(config):
    maps = _maps(3, 5, 32, 40)
    boxes = [make_letterbox(w, h, PreprocessConfig(input_size=(128, 160))) for w, h in
             [(900, 600), (300, 1000), (640, 480)]]  # fmt: skip
    expected = _host(maps, boxes, config)
    top = maps_to_top_boxes(maps, np.stack([b.output_to_original for b in boxes]), config.max_dets)
    for row, want in enumerate(expected):
        got = top.detections(row, config.threshold, config.max_dets)
        assert np.array_equal(got.class_ids, want.class_ids)
        assert np.array_equal(got.scores, want.scores)
        assert np.allclose(got.xyxy, want.xyxy, atol=1e-4, rtol=0)


def test_only_the_rows_with_letterboxes_are_decoded_and_few_peaks_are_not_padded():
    hm = torch.zeros((2, 1, 8, 8))
    hm[0, 0, 2, 3], hm[0, 0, 6, 6] = 0.9, 0.4  # two peaks; every other cell scores 0
    maps = (F.max_pool2d(hm, 3, 1, 1), hm, torch.ones((2, 2, 8, 8)), torch.zeros((2, 2, 8, 8)))
    box = make_letterbox(32, 32, PreprocessConfig(input_size=(32, 32)))
    top = maps_to_top_boxes(maps, np.stack([box.output_to_original]), 100)
    assert top.scores.shape == (1, 64)  # k is capped at the map's cells; padding row dropped
    got = top.detections(0)
    want = _host(maps, [box], PostprocessConfig())[0]
    assert len(got) == 2 and np.array_equal(got.scores, want.scores)
    assert np.allclose(got.xyxy, want.xyxy)


def test_top_peaks_ranks_ties_by_index():
    hm = torch.tensor([[[[0.5, 0.0, 0.5, 0.0, 0.5]]]])
    scores, index = top_peaks(hm, hm, 3)
    assert scores.tolist() == [[0.5, 0.5, 0.5]] and index.tolist() == [[0, 2, 4]]
