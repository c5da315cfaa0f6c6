"""Pre-processing against known geometry and a float64 reference of the original formula."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from centernet.runtime.preprocess import (
    PreprocessConfig,
    keep_res_pad,
    make_letterbox,
    preprocess_batch,
    preprocess_into,
)
from centernet.types import COCO_MEAN, COCO_STD, Letterbox


def expected_fix_res_matrix(width: int, height: int, size: int = 512) -> np.ndarray:
    """Square of side max(w, h) centred on the image, scaled onto the size x size input."""
    k = size / max(width, height)
    return np.array([[k, 0, size / 2 - k * width / 2], [0, k, size / 2 - k * height / 2]])


def reference_normalise(warped: np.ndarray) -> np.ndarray:
    mean = np.array(COCO_MEAN, np.float32).reshape(1, 1, 3)
    std = np.array(COCO_STD, np.float32).reshape(1, 1, 3)
    return ((warped / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)


@pytest.mark.parametrize("width,height", [(906, 600), (600, 906), (512, 512), (1, 1), (37, 1000)])
def test_fix_res_affine_is_the_centred_square(width, height):
    box = make_letterbox(width, height, PreprocessConfig())
    assert np.allclose(box.to_input, expected_fix_res_matrix(width, height), atol=1e-4)
    assert box.input_size == (512, 512)
    assert box.center == (width / 2, height / 2) and box.scale[0] == max(width, height)


def test_fix_res_pixels_equal_original_formula(photo_paths):
    image = cv2.imread(str(photo_paths[0]))
    height, width = image.shape[:2]
    warped = cv2.warpAffine(
        image,
        make_letterbox(width, height, PreprocessConfig()).to_input,
        (512, 512),
        flags=cv2.INTER_LINEAR,
    )
    got, _ = preprocess_into(image, PreprocessConfig())
    assert got.dtype == np.float32 and got.shape == (3, 512, 512)
    assert np.array_equal(got, reference_normalise(warped))  # bit-identical
    # The photo lands where geometry says: content in the middle rows, border black.
    k = 512 / width
    top = int(np.ceil(256 - k * height / 2)) + 1
    assert np.all(got[:, : top - 2] == reference_normalise(np.zeros((1, 1, 3)))[:, :1])


@pytest.mark.parametrize(
    "width,height,padded",
    [(906, 600, (928, 608)), (512, 512, (544, 544)), (1, 1, (32, 32)), (31, 33, (32, 64))],
)
def test_keep_res_pads_like_the_original(width, height, padded):
    # The original pads with (side | 31) + 1: a side already a multiple of 32 still grows by 32.
    box = make_letterbox(width, height, PreprocessConfig(keep_res=True))
    assert box.input_size == padded
    # Scale 1: a pure translation taking the centre (w//2, h//2) to the padded centre.
    shift = (padded[0] / 2 - width // 2, padded[1] / 2 - height // 2)
    assert np.allclose(box.to_input, [[1, 0, shift[0]], [0, 1, shift[1]]], atol=1e-5)


def test_keep_res_pads_hourglass_to_128():
    # Hourglass-104 down-samples 7 times; the original uses opt.pad = 127 for it.
    config = PreprocessConfig(keep_res=True, pad=keep_res_pad("hourglass"))
    assert make_letterbox(906, 600, config).input_size == (1024, 640)
    dla = PreprocessConfig(keep_res=True, pad=keep_res_pad("dla_34"))
    assert make_letterbox(906, 600, dla).input_size == (928, 608)


@pytest.mark.parametrize("keep_res", [False, True])
def test_affine_round_trip_under_a_hundredth_of_a_pixel(keep_res):
    rng = np.random.default_rng(0)
    config = PreprocessConfig(keep_res=keep_res)
    for width, height in [(906, 600), (333, 1000), (10000, 10000), (1, 1)]:
        box = make_letterbox(width, height, config)
        points = rng.uniform(0, [width, height], size=(500, 2))
        back = Letterbox.apply(box.input_to_original, Letterbox.apply(box.to_input, points))
        assert np.max(np.abs(back - points)) < 0.01
        from_output = Letterbox.apply(
            box.output_to_original, Letterbox.apply(box.to_input, points) / config.down_ratio
        )
        assert np.max(np.abs(from_output - points)) < 0.01


def test_batch_rows_equal_single_images(photo_paths):
    images = [cv2.imread(str(p)) for p in photo_paths[:3]]
    batch, boxes = preprocess_batch(images, PreprocessConfig())
    assert batch.shape == (3, 3, 512, 512) and len(boxes) == 3
    for row, image in zip(batch, images):
        assert np.array_equal(row, preprocess_into(image, PreprocessConfig())[0])


def test_rejects_non_bgr_input():
    with pytest.raises(ValueError, match="BGR uint8"):
        preprocess_into(np.zeros((10, 10), np.uint8), PreprocessConfig())


def test_into_a_batch_slot_or_a_strided_slot_gives_the_same_pixels():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    config = PreprocessConfig(input_size=(64, 96))
    alone, _ = preprocess_into(image, config)
    batch = np.full((2, 3, 64, 96), np.nan, np.float32)
    preprocess_into(image, config, batch[1])
    strided = np.full((3, 64, 192), np.nan, np.float32)
    preprocess_into(image, config, strided[:, :, ::2])
    assert np.array_equal(batch[1], alone) and np.isnan(batch[0]).all()
    assert np.array_equal(strided[:, :, ::2], alone) and np.isnan(strided[:, :, 1::2]).all()
