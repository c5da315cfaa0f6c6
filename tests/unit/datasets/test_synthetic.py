"""The synthetic set is deterministic, and its boxes are tight around the drawn pixels."""

from __future__ import annotations

import json

import numpy as np

from centernet.datasets.synthetic import CLASSES, SynthConfig, render_sample, write_dataset


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = write_dataset(tmp_path / "a", 3, seed=5)
    b = write_dataset(tmp_path / "b", 3, seed=5)
    c = write_dataset(tmp_path / "c", 3, seed=6)
    assert a.read_bytes() == b.read_bytes()
    for name in sorted(p.name for p in (tmp_path / "a" / "images").iterdir()):
        assert (tmp_path / "a" / "images" / name).read_bytes() == (
            tmp_path / "b" / "images" / name
        ).read_bytes()
    assert a.read_bytes() != c.read_bytes()
    # any index can be drawn alone and equals the set's image
    assert np.array_equal(render_sample(5, 2).image, render_sample(5, 2).image)


def test_coco_file_is_consistent(tmp_path):
    data = json.loads(write_dataset(tmp_path, 4, seed=1).read_text())
    assert [c["name"] for c in data["categories"]] == list(CLASSES)
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    assert all(300 <= w <= 1000 and 300 <= h <= 1000 for w, h in sizes.values())
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height and w >= 1 and h >= 1
        assert ann["area"] == w * h and 1 <= ann["category_id"] <= len(CLASSES)


def test_boxes_are_tight_around_drawn_pixels():
    checked = 0
    for index in range(12):
        sample = render_sample(3, index)
        height, width = sample.clean.shape[:2]
        for k, obj in enumerate(sample.objects):
            x1, y1, x2, y2 = obj.box
            later = sample.objects[k + 1 :]
            if any(
                o.box[0] <= x2 + 3
                and o.box[2] >= x1 - 3
                and o.box[1] <= y2 + 3
                and o.box[3] >= y1 - 3
                for o in later
            ):
                continue  # partly hidden by a later shape: its visible pixels can be fewer
            ys, xs = np.nonzero(
                np.all(
                    sample.clean[max(0, y1 - 3) : y2 + 4, max(0, x1 - 3) : x2 + 4] == obj.colour,
                    axis=2,
                )
            )
            found = (
                xs.min() + max(0, x1 - 3),
                ys.min() + max(0, y1 - 3),
                xs.max() + max(0, x1 - 3),
                ys.max() + max(0, y1 - 3),
            )
            assert found == obj.box, (index, k, CLASSES[obj.class_id])
            if (
                CLASSES[obj.class_id] == "circle"
                and x1 > 0
                and y1 > 0
                and x2 < width - 1
                and y2 < height - 1
            ):
                assert x2 - x1 == y2 - y1  # a whole circle's box is square
            checked += 1
    assert checked >= 30


def test_varied_and_small_objects():
    objects = [o for i in range(40) for o in render_sample(0, i).objects]
    sides = np.array([max(o.xywh[2], o.xywh[3]) for o in objects])
    assert {o.class_id for o in objects} == set(range(len(CLASSES)))
    assert (sides < 32).mean() > 0.15 and sides.max() > 200
    assert len({o.colour for o in objects}) > 0.9 * len(objects)


def test_plain_config_has_no_clutter_or_noise():
    sample = render_sample(0, 0, SynthConfig(clutter=False, noise=False))
    assert np.array_equal(sample.image, sample.clean)
