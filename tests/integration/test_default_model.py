"""The bundled default model loads and keeps its measured accuracy."""

from __future__ import annotations

import pytest

from centernet.datasets.coco import load_annotations
from centernet.datasets.synthetic import write_dataset
from centernet.demo import EVAL_SEED, default_model_path
from centernet.measure.evaluate import evaluate_detector
from centernet.runtime.detector import Detector

pytest.importorskip("torch")

# Measured 0.722 on these 20 held-out synthetic images (seed EVAL_SEED) with the torch
# engine at the model's 768x768 (BENCHMARKS.md); the floor leaves room for float
# differences only.
AP_FLOOR = 0.70


def test_default_model_loads_and_scores_above_its_floor(tmp_path):
    from centernet.models.checkpoint import load_checkpoint

    path = default_model_path()
    assert path.stat().st_size <= 20e6
    loaded = load_checkpoint(path)
    assert loaded.arch == "dlav0_34" and loaded.num_classes == 5
    assert loaded.class_names == ["circle", "square", "triangle", "cross", "star"]
    assert loaded.input_size == (768, 768)  # trained for it; Detector(path) runs at it
    ann = write_dataset(tmp_path, 20, seed=EVAL_SEED)
    outcome = evaluate_detector(
        Detector(path, batch_size=4), load_annotations(ann), tmp_path / "images"
    )
    assert outcome.stats["AP"] >= AP_FLOOR
