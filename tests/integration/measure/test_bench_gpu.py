"""benchmarks/gpu_check.py and bench_gpu.py run (their --device cpu --quick mode, the GPU
run's code path), and bench_gpu's fall-back AP (for GPU machines without pycocotools) is
pycocotools' AP."""

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
CHECK = SCRIPT.with_name("gpu_check.py")


def _check():
    sys.path.insert(0, str(SCRIPT.parent))  # gpu_check imports bench_gpu beside it
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def _script():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_writes_the_table_parity_and_profile(tmp_path):
    """benchmarks/gpu_check.py (the prepared GPU check, which runs bench_gpu.py first) as a
    command, on the CPU: the table, the host/device parity of a real model's boxes, its AP
    per run, and the profile, in one JSON."""
    from centernet.datasets.synthetic import write_dataset
    from centernet.demo import default_model_path

    ann = write_dataset(tmp_path / "data", 4, seed=3)
    args = [sys.executable, str(CHECK), "--device", "cpu", "--quick", "--out", str(tmp_path),
            "--checkpoint", str(default_model_path()), "--ann", str(ann),
            "--images", str(tmp_path / "data" / "images"), "--parity-images", "3",
            "--ap-precisions", "fp32",
            "--profile-batch", "2", "--input-size", "256",
            "--table-args", "--iterations 2 --jpegs 3 --ap-images 2 --threads 1"]  # fmt: skip
    run = subprocess.run(args, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert set(data["table"]) == {"fp32", "bf16"} and set(data["eager_fp32"]) == {"1", "2"}
    for rows in data["table"].values():
        assert [r["batch"] for r in rows] == [1, 2]
        assert all(
            r["network"]["images_per_s"] > 0 and r["end_to_end_images_per_s"] > 0 for r in rows
        )
    ap = data["ap"]["AP"]
    assert set(ap) == {"host fp32", "device fp32", "device bf16"}
    assert abs(ap["device fp32"] - ap["host fp32"]) <= 0.002
    markdown = (tmp_path / "bench_gpu.md").read_text()
    assert "| fp32 | 2 |" in markdown and "| device bf16 |" in markdown
    check = json.loads((tmp_path / "gpu_check.json").read_text())
    parity = check["full_size"]["parity"]  # the same torch model on the CPU both ways
    assert parity["same"] and parity["boxes_compared"] > 0 and parity["max_corner_px"] < 1e-3
    full_ap = check["full_size"]["ap"]
    assert set(full_ap) == {"host fp32", "device fp32"}
    assert abs(full_ap["host fp32"] - full_ap["device fp32"]) <= 0.002
    top = check["profile"]["top"]
    assert top and all(r["ms"] >= 0 for r in top) and sum(r["share"] for r in top) <= 1.0 + 1e-9
    assert any("conv" in r["op"] for r in top)  # the network is where a CPU spends it
    assert "the same boxes" in (tmp_path / "gpu_check.md").read_text()


def test_the_box_comparison_finds_a_moved_box():
    """gpu_check's parity: an independent small case, one box moved by 3 px, one score off."""
    from centernet.types import Detections

    check = _check()

    def dets(boxes, scores, classes):
        return Detections(np.array(boxes, np.float32), np.array(scores, np.float32),
                          np.array(classes, np.int64))  # fmt: skip

    host = [dets([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]], [0.9, 0.5, 0.1], [0, 1, 0])]
    same = check.compare_boxes(host, host)
    assert same["same"] and same["boxes_compared"] == 2  # the 0.1 box is below 0.3
    moved = [dets([[0, 0, 13, 10], [5, 5, 20, 20]], [0.9, 0.5 + 0.01], [0, 1])]
    got = check.compare_boxes(host, moved)
    assert got["boxes_off"] == 2 and got["max_corner_px"] == 3.0 and not got["same"]
    assert got["max_score_diff"] == pytest.approx(0.01, abs=1e-6)


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
