"""Calibration images: the inference pre-processing exactly, whole batches, unreadable
files skipped and named, and the strides ONNX Runtime reads histogram methods in."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from centernet.errors import CenterNetError
from centernet.quantize.calibration import ImageCalibrationReader, calibration_paths
from centernet.runtime.images import read_image
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into
from centernet.types import ModelSpec

SPEC = ModelSpec("dlav0_34", 1, ["a"], input_size=(64, 96))


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(7):
        image = rng.integers(0, 256, (40 + 10 * i, 70, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"img_{i}.png"), image)
    (tmp_path / "notes.txt").write_text("not an image, not listed")
    return tmp_path


def test_paths_are_sorted_and_cut_to_whole_batches(folder):
    assert [p.name for p in calibration_paths(folder, 100, batch=3)] == [
        f"img_{i}.png" for i in range(6)
    ]  # 7 images, batches of 3: the 7th is left out
    assert len(calibration_paths(folder, 4, batch=1)) == 4
    with pytest.raises(CenterNetError, match="fewer than one batch of 8"):
        calibration_paths(folder, 100, batch=8)


def test_batches_are_the_inference_preprocessing(folder):
    paths = calibration_paths(folder, 4, batch=2)
    reader = ImageCalibrationReader(paths, SPEC, batch=2)
    config = PreprocessConfig(input_size=SPEC.input_size)
    seen = []
    while (item := reader.get_next()) is not None:
        assert item["input"].shape == (2, 3, 64, 96)
        seen += list(item["input"])
    assert len(seen) == 4
    for row, path in zip(seen, paths):
        assert np.array_equal(row, preprocess_into(read_image(path), config)[0])


def test_an_unreadable_file_is_skipped_named_and_replaced_by_the_next(folder):
    (folder / "img_1.png").write_bytes(b"broken")
    paths = calibration_paths(folder, 4, batch=2)
    reader = ImageCalibrationReader(paths, SPEC, batch=2)
    first = reader.get_next()["input"]
    config = PreprocessConfig(input_size=SPEC.input_size)
    assert np.array_equal(first[1], preprocess_into(read_image(paths[2]), config)[0])
    assert len(reader.skipped) == 1 and "img_1.png" in reader.skipped[0]
    assert reader.get_next() is None  # one readable image left: not a whole batch


def test_strides_read_only_their_batches(folder):
    paths = calibration_paths(folder, 6, batch=2)
    whole = ImageCalibrationReader(paths, SPEC, batch=2)
    batches = [whole.get_next()["input"] for _ in range(3)]
    stride = ImageCalibrationReader(paths, SPEC, batch=2)
    stride.set_range(1, 2)
    assert np.array_equal(stride.get_next()["input"], batches[1])
    assert stride.get_next() is None
    stride.rewind()
    assert np.array_equal(stride.get_next()["input"], batches[0])
