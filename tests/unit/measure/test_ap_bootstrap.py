"""The fast per-image AP against pycocotools itself: on the whole set, and on a resample
written out as a data set of its own (repeated images under new ids)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pycocotools")

from centernet.datasets.coco_scoring import coco_evaluate  # noqa: E402
from centernet.measure.ap_bootstrap import PerImageAP, paired_difference  # noqa: E402


def synthetic(seed: int, images: int = 30, noise: float = 6.0):
    """Ground truth with 0-4 boxes of 3 classes per image, and noisy detections of them
    plus false positives."""
    rng = np.random.default_rng(seed)
    truth = {"images": [], "annotations": [], "categories": [{"id": c} for c in (1, 2, 3)]}
    results = []
    for image in range(1, images + 1):
        truth["images"].append({"id": image, "width": 200, "height": 200})
        for _ in range(rng.integers(0, 5)):
            x, y, w, h = rng.uniform(0, 150), rng.uniform(0, 150), rng.uniform(10, 50), 30.0
            category = int(rng.integers(1, 4))
            truth["annotations"].append({
                "id": len(truth["annotations"]) + 1, "image_id": image, "category_id": category,
                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
            })  # fmt: skip
            if rng.random() < 0.85:
                box = [x + rng.normal(0, noise), y + rng.normal(0, noise), w, h]
                results.append({"image_id": image, "category_id": category, "bbox": box,
                                "score": float(rng.uniform(0.3, 1))})  # fmt: skip
        for _ in range(rng.integers(0, 3)):
            box = [float(v) for v in rng.uniform(0, 150, 2)] + [20.0, 20.0]
            results.append({"image_id": image, "category_id": int(rng.integers(1, 4)),
                            "bbox": box, "score": float(rng.uniform(0, 0.6))})  # fmt: skip
    return truth, results


def resampled(truth: dict, results: list[dict], sample) -> tuple[dict, list[dict]]:
    """The resample as a data set of its own: image i of the sample gets id i + 1."""
    ids = [im["id"] for im in truth["images"]]
    new_truth = {"images": [], "annotations": [], "categories": truth["categories"]}
    new_results = []
    for new, index in enumerate(sample, start=1):
        old = ids[index]
        new_truth["images"].append({"id": new, "width": 200, "height": 200})
        for a in truth["annotations"]:
            if a["image_id"] == old:
                new_truth["annotations"].append(
                    {**a, "image_id": new, "id": len(new_truth["annotations"]) + 1}
                )
        new_results += [{**r, "image_id": new} for r in results if r["image_id"] == old]
    return new_truth, new_results


def test_the_whole_set_is_pycocotools_ap():
    truth, results = synthetic(0)
    assert PerImageAP(truth, results).ap() == pytest.approx(
        coco_evaluate(truth, results)["AP"], abs=1e-12
    )


def test_a_resample_is_pycocotools_ap_of_that_resample_written_out():
    truth, results = synthetic(1)
    per_image = PerImageAP(truth, results)
    sample = np.random.default_rng(5).integers(0, 30, 30)
    assert per_image.ap(sample) == pytest.approx(
        coco_evaluate(*resampled(truth, results, sample))["AP"], abs=1e-12
    )


def test_ap_per_iou_threshold_is_pycocotools_precision_at_each_threshold():
    """Against pycocotools' own accumulated precision array (area all, 100 detections):
    the mean over recall points and categories at each threshold."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth, results = synthetic(3)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # (T, R, K), area all, 100 dets
    want = [float(np.mean(p[p > -1])) for p in precision]
    per_image = PerImageAP(truth, results)
    assert per_image.iou_thresholds == pytest.approx(np.linspace(0.5, 0.95, 10).tolist())
    assert per_image.ap_per_threshold() == pytest.approx(want, abs=1e-12)
    assert np.mean(per_image.ap_per_threshold()) == pytest.approx(per_image.ap(), abs=1e-12)
    # boxes off by about a pixel (0.3 -> 1.5 px of noise): nothing lost at IoU 0.5, most at 0.95
    _, close = synthetic(3, noise=0.3)
    _, off = synthetic(3, noise=1.5)
    loss = np.subtract(
        PerImageAP(truth, close).ap_per_threshold(), PerImageAP(truth, off).ap_per_threshold()
    )
    assert loss[0] == pytest.approx(0.0, abs=1e-12) and loss[-1] > 0.5


def test_the_paired_difference_is_exact_on_the_whole_set_and_spreads_over_resamples():
    truth, results = synthetic(2)
    _, worse = synthetic(2, noise=12.0)  # the same boxes, placed worse
    a, b = PerImageAP(truth, results), PerImageAP(truth, worse)
    found = paired_difference(a, b, rounds=200)
    assert found.difference == pytest.approx(b.ap() - a.ap()) and found.difference < 0
    assert found.low <= found.difference <= found.high and found.sd > 0
    same = paired_difference(a, PerImageAP(truth, results), rounds=50)
    assert same.difference == same.low == same.high == 0.0
