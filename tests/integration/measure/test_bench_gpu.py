"""benchmarks/bench_gpu.py runs (its --device cpu --quick mode, the GPU run's code path),
and its fall-back AP (for GPU machines without pycocotools) is pycocotools' AP."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_gpu.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_writes_the_table(tmp_path):
    """As a command, in its own process (it sets torch's thread count)."""
    args = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(tmp_path)]
    args += ["--batches", "2", "--iterations", "2", "--jpegs", "3", "--ap-images", "2"]
    assert subprocess.run([*args, "--threads", "1"], capture_output=True).returncode == 0
    data = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert set(data["table"]) == {"fp32", "bf16"} and set(data["eager_fp32"]) == {"2"}
    for rows in data["table"].values():
        assert [r["batch"] for r in rows] == [2]
        assert all(
            r["network"]["images_per_s"] > 0 and r["end_to_end_images_per_s"] > 0 for r in rows
        )
    ap = data["ap"]["AP"]
    assert set(ap) == {"host fp32", "device fp32", "device bf16"}
    assert abs(ap["device fp32"] - ap["host fp32"]) <= 0.002
    markdown = (tmp_path / "bench_gpu.md").read_text()
    assert "| fp32 | 2 |" in markdown and "| device bf16 |" in markdown


def test_builtin_box_ap_is_pycocotools_ap(tmp_path):
    from centernet.datasets.coco_scoring import coco_evaluate
    from centernet.datasets.synthetic import write_dataset

    ann = write_dataset(tmp_path, 12, seed=3)
    truth = json.loads(ann.read_text())["annotations"]
    rng = np.random.default_rng(0)
    detections = []
    for g in truth:  # near hits, shifted duplicates and misses, with overlapping scores
        for shift, score in [(0.05, 0.9), (0.3, 0.6), (0.0, 0.2)]:
            if rng.random() < 0.8:
                x, y, w, h = g["bbox"]
                jitter = rng.normal(0, shift * max(w, h), 4)
                box = [
                    x + jitter[0],
                    y + jitter[1],
                    max(1.0, w + jitter[2]),
                    max(1.0, h + jitter[3]),
                ]
                score = float(score * rng.uniform(0.8, 1))
                detections.append(_entry(g["image_id"], g["category_id"], box, score))
        wrong_class = 1 + g["category_id"] % 5
        detections.append(_entry(g["image_id"], wrong_class, [5.0, 5.0, 40.0, 40.0], 0.5))
    expected = coco_evaluate(ann, detections)["AP"]
    assert 0.05 < expected < 0.95
    assert _script().coco_box_ap(truth, detections) == pytest.approx(expected, abs=1e-9)


def _entry(image_id: int, category_id: int, box: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}
