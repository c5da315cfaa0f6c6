"""COCO AP on boxes of known geometry: every number here follows from the IoUs."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pycocotools")

from centernet.datasets.coco_scoring import coco_evaluate  # noqa: E402


def write_truth(path, boxes_per_image: dict[int, list[list[float]]]) -> None:
    images = [
        {"id": i, "file_name": f"{i}.jpg", "width": 200, "height": 200} for i in boxes_per_image
    ]
    annotations = [
        {"id": n, "image_id": i, "category_id": 1, "bbox": box, "area": box[2] * box[3],
         "iscrowd": 0}
        for n, (i, box) in enumerate(
            ((i, b) for i, boxes in boxes_per_image.items() for b in boxes), start=1
        )
    ]  # fmt: skip
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1}]})
    )


def result(image_id: int, box: list[float], score: float = 0.9) -> dict:
    return {"image_id": image_id, "category_id": 1, "bbox": box, "score": score}


def test_exact_boxes_score_one_and_no_boxes_score_zero(tmp_path):
    truth = tmp_path / "gt.json"
    write_truth(truth, {1: [[10, 10, 50, 50]], 2: [[100, 20, 40, 80]]})
    stats = coco_evaluate(truth, [result(1, [10, 10, 50, 50]), result(2, [100, 20, 40, 80])])
    assert stats["AP"] == pytest.approx(1.0) and stats["AR100"] == pytest.approx(1.0)
    assert coco_evaluate(truth, [])["AP"] == 0.0


def test_a_box_at_iou_0_72_counts_at_five_of_the_ten_thresholds(tmp_path):
    """One object, one detection of IoU 0.72: a hit at IoU 0.50-0.70, a miss at 0.75-0.95,
    so AP = 5/10 exactly, AP50 = 1, AP75 = 0."""
    truth = tmp_path / "gt.json"
    write_truth(truth, {1: [[0, 0, 100, 100]]})
    shifted = [0, 0, 100, 72]  # inside the truth: IoU = 7200 / 10000
    stats = coco_evaluate(truth, [result(1, shifted)])
    assert stats["AP"] == pytest.approx(0.5)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(0.0)


def test_a_missed_object_halves_recall_and_a_false_positive_ranked_first_costs_precision(
    tmp_path,
):
    truth = tmp_path / "gt.json"
    write_truth(truth, {1: [[0, 0, 50, 50], [100, 100, 50, 50]]})
    only_one = coco_evaluate(truth, [result(1, [0, 0, 50, 50])])
    assert only_one["AR100"] == pytest.approx(0.5)
    # 101-point interpolated precision: recall 0..0.5 at precision 1, nothing beyond
    assert only_one["AP"] == pytest.approx(51 / 101)
    noisy = coco_evaluate(
        truth,
        [result(1, [150, 0, 40, 40], 0.95), result(1, [0, 0, 50, 50], 0.9),
         result(1, [100, 100, 50, 50], 0.8)],
    )  # fmt: skip
    # the false positive first: precision 1/2 at recall 0.5, 2/3 at recall 1 -> 2/3 throughout
    assert noisy["AP"] == pytest.approx(2 / 3, abs=1e-6)


def test_image_ids_restrict_scoring_to_the_images_run(tmp_path):
    truth = tmp_path / "gt.json"
    write_truth(truth, {1: [[10, 10, 50, 50]], 2: [[100, 20, 40, 80]]})
    stats = coco_evaluate(truth, [result(1, [10, 10, 50, 50])], image_ids=[1])
    assert stats["AP"] == pytest.approx(1.0)  # image 2's object is not counted as missed
