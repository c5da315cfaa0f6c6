"""The torch warp against OpenCV: the same bytes, so the device pipeline's input tensor is
the host's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from centernet.runtime.preprocess import PreprocessConfig, make_letterbox, preprocess_into

torch = pytest.importorskip("torch")

from centernet.runtime.device.warp import (  # noqa: E402
    WarpJob,
    opencv_arithmetic,
    opencv_inverse,
    warp_bgr,
    warp_normalise,
)

SIZES = [(600, 906), (37, 51), (5, 7), (1000, 300), (480, 640)]  # (height, width)
CONFIGS = {
    "fix_res 512": PreprocessConfig(input_size=(512, 512)),
    "fix_res 128": PreprocessConfig(input_size=(128, 128)),
    "keep_res": PreprocessConfig(keep_res=True),
}


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_warp_normalise_equals_the_host_preprocessing(config, photo_paths):
    images = [cv2.imread(str(photo_paths[0]))] + [_noise(h, w) for h, w in SIZES]
    for image in images:
        box = make_letterbox(image.shape[1], image.shape[0], config)
        expected, _ = preprocess_into(image, config)
        got = warp_normalise(
            [WarpJob(torch.from_numpy(image), box.to_input)],
            box.input_size,
            config.mean,
            config.std,
        )
        assert np.array_equal(got[0].numpy(), expected), (image.shape, cv2.__version__)


def test_one_call_warps_differently_sized_images_into_a_preallocated_batch():
    config = CONFIGS["fix_res 128"]
    images = [_noise(h, w, seed) for seed, (h, w) in enumerate(SIZES)]
    boxes = [make_letterbox(im.shape[1], im.shape[0], config) for im in images]
    batch = torch.full((len(images) + 2, 3, 128, 128), 7.0)
    jobs = [WarpJob(torch.from_numpy(im), b.to_input) for im, b in zip(images, boxes)]
    out = warp_normalise(jobs, (128, 128), config.mean, config.std, out=batch)
    assert out is batch
    for row, image in enumerate(images):
        assert np.array_equal(batch[row].numpy(), preprocess_into(image, config)[0])
    assert torch.all(batch[len(images) :] == 7.0)  # rows past the jobs are left alone


def test_any_affine_is_within_one_grey_level_of_cv2_warp_affine():
    """Rotation too: the general formula, not only the letterbox's axis-aligned one. What
    is promised here is 1 grey level in few pixels, not bit identity: OpenCV's rounding
    for a general affine is not stable across versions (5.0 matched bit for bit, 5.1 differs
    by 1 in ~0.05 % of pixels), and the pipeline only ever warps axis-aligned letterboxes,
    which the tests above hold to bit identity."""
    image = _noise(300, 400, seed=3)
    for angle in (17.0, -33.3, 90.0):
        matrix = cv2.getRotationMatrix2D((200.0, 150.0), angle, 0.77)
        expected = cv2.warpAffine(image, matrix, (256, 192), flags=cv2.INTER_LINEAR)
        got = warp_bgr([WarpJob(torch.from_numpy(image), matrix)], (256, 192))[0].numpy()
        diff = np.abs(got.astype(int) - expected)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.005, (angle, cv2.__version__)


def test_opencv_arithmetic_follows_the_version():
    assert opencv_arithmetic("4.8.1") == "fixed" and opencv_arithmetic("4.10.0") == "fixed"
    assert opencv_arithmetic("4.11.0") == "float" and opencv_arithmetic("5.0.0") == "float"
    assert opencv_arithmetic() == opencv_arithmetic(cv2.__version__)


def test_the_other_arithmetic_differs_by_a_few_grey_levels_in_few_pixels(photo_paths):
    """The arithmetic of the OpenCV not installed (measured bit-exact against 4.10.0 and
    5.0.0 when written) is checked here only against the installed one: on a photo, a few
    grey levels apart at edges, in few pixels (1/32-pixel coordinates against float)."""
    other = "fixed" if opencv_arithmetic() == "float" else "float"
    image = cv2.imread(str(photo_paths[0]))
    box = make_letterbox(image.shape[1], image.shape[0], CONFIGS["fix_res 512"])
    expected = cv2.warpAffine(image, box.to_input, (512, 512), flags=cv2.INTER_LINEAR)
    got = warp_bgr([WarpJob(torch.from_numpy(image), box.to_input)], (512, 512), other)
    diff = np.abs(got[0].numpy().astype(int) - expected)
    assert diff.max() <= 4 and (diff > 0).mean() < 0.05


def test_opencv_inverse_inverts():
    box = make_letterbox(906, 600, CONFIGS["fix_res 512"])
    inverse = opencv_inverse(box.to_input).reshape(2, 3)
    forward = np.vstack([box.to_input, [0, 0, 1]])
    assert np.allclose(np.vstack([inverse, [0, 0, 1]]) @ forward, np.eye(3), atol=1e-12)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="BGR uint8"):
        warp_bgr([WarpJob(torch.zeros((4, 4), dtype=torch.uint8), np.eye(2, 3))], (8, 8))
    with pytest.raises(ValueError, match="arithmetic"):
        warp_bgr([WarpJob(torch.zeros((4, 4, 3), dtype=torch.uint8), np.eye(2, 3))], (8, 8), "x")
