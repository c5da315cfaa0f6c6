"""Training-time geometry and colour augmentation, CenterNet style.

Geometry: a random scale of the image's longer side (0.6-1.4), a random centre away from
the borders, and a horizontal flip, through the same affine as inference pre-processing.
Optionally only a ``crop`` x ``crop`` window of the input is kept: the pixel density of
the full input size is preserved, so a model trained on cheap crops runs at full size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from centernet.runtime.preprocess import get_affine_transform


@dataclass(frozen=True)
class AugmentConfig:
    input_size: int = 512  # the square inference input whose scale training keeps
    crop: int | None = None  # train on crop x crop windows of that input (None: all of it)
    scale_range: tuple[float, float] = (0.6, 1.4)
    flip: float = 0.5
    colour: bool = True


def _border(border: int, size: int) -> int:
    """The original ``_get_border``: shrink the border until the image can hold two."""
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


def sample_affine(
    width: int, height: int, config: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """A random original -> training-input affine (2x3); training input is crop or size."""
    side = float(max(width, height)) * rng.uniform(*config.scale_range)
    wb, hb = _border(128, width), _border(128, height)
    center = np.array(
        [rng.integers(wb, max(wb + 1, width - wb)), rng.integers(hb, max(hb + 1, height - hb))],
        dtype=np.float32,
    )
    size = config.input_size
    matrix = get_affine_transform(center, side, (size, size))
    if config.crop is not None and config.crop < size:
        matrix[:, 2] -= rng.integers(0, size - config.crop + 1, 2)
    return matrix


def flip_horizontally(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its xyxy boxes (pixel-edge coordinates)."""
    width = image.shape[1]
    flipped = boxes.copy()
    flipped[:, [0, 2]] = width - boxes[:, [2, 0]]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def jitter_colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation (0.6-1.4 each), in random order; uint8."""
    x = image.astype(np.float32)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)[..., None]
    for op in rng.permutation(3):
        alpha = np.float32(rng.uniform(0.6, 1.4))
        if op == 0:
            x *= alpha
        elif op == 1:
            x = grey.mean() + (x - grey.mean()) * alpha
        else:
            x = grey + (x - grey) * alpha
    return np.clip(x, 0, 255).astype(np.uint8)


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map xyxy boxes through an axis-aligned affine (no rotation), keeping x1 <= x2."""
    corners = boxes.reshape(-1, 2) @ matrix[:, :2].T + matrix[:, 2]
    out = corners.reshape(-1, 4)
    return np.concatenate(
        [np.minimum(out[:, :2], out[:, 2:]), np.maximum(out[:, :2], out[:, 2:])], axis=1
    ).astype(np.float32)
