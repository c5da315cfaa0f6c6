"""Synthetic clips: the synthetic set's shapes moving in straight lanes over a gradient, with
the box of every shape in every frame known. For tests, the benchmark and the picture in
docs/detect.md: no video can be downloaded on our machines, and known boxes make tracking and
frame timing checkable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from centernet.datasets.synthetic import CLASSES, draw_shape
from centernet.errors import CenterNetError

Box = tuple[int, int, int, int]  # x1, y1, x2, y2: inclusive pixel bounds of the drawn shape


@dataclass(frozen=True)
class MovingShape:
    class_id: int
    start: tuple[float, float]  # centre at frame 0, pixels
    velocity: tuple[float, float]  # pixels per frame
    size: int  # longest extent, pixels
    angle: float
    colour: tuple[int, int, int]

    def centre(self, frame: int) -> tuple[int, int]:
        return (
            int(round(self.start[0] + self.velocity[0] * frame)),
            int(round(self.start[1] + self.velocity[1] * frame)),
        )


def lane_shapes(width: int, height: int, frames: int, count: int = 3) -> list[MovingShape]:
    """``count`` shapes of different classes, one per horizontal lane, crossing the frame
    left to right or right to left over ``frames`` frames (lanes never cross)."""
    lane = height / count
    size = int(min(lane * 0.7, width * 0.2))
    if size < 16:
        raise CenterNetError(f"{width}x{height} is too small for {count} lanes of shapes")
    margin = size / 2 + 4
    travel = width - 2 * margin
    shapes = []
    for k in range(count):
        forward = k % 2 == 0
        x0 = margin if forward else width - margin
        speed = travel / max(1, frames - 1) * (1 if forward else -1)
        colour = ((70 * k + 40) % 256, (150 + 50 * k) % 256, (230 - 60 * k) % 256)
        shapes.append(
            MovingShape(
                class_id=k % len(CLASSES),
                start=(x0, lane * (k + 0.5)),
                velocity=(speed, 0.0),
                size=size,
                angle=0.3 * k,
                colour=colour,
            )
        )
    return shapes


def _gradient(width: int, height: int) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([90, 60, 40], np.float32), np.array([40, 90, 130], np.float32)
    image = top * (1 - ramp) + bottom * ramp
    return np.broadcast_to(image, (height, width, 3)).astype(np.uint8)


def render_frame(
    shapes: list[MovingShape], frame: int, width: int, height: int
) -> tuple[np.ndarray, list[tuple[int, Box]]]:
    """Frame ``frame``: the BGR image and (class id, box) of each shape drawn in it."""
    image = _gradient(width, height)
    truth = []
    for shape in shapes:
        cx, cy = shape.centre(frame)
        box = draw_shape(image, shape.class_id, cx, cy, shape.size, shape.angle, shape.colour)
        if box is not None:
            truth.append((shape.class_id, box))
    return image, truth


def write_clip(
    path: str | Path,
    frames: int,
    size: tuple[int, int] = (256, 192),
    fps: float = 25.0,
    codec: str = "mp4v",
    shapes: list[MovingShape] | None = None,
    noise: float = 0.0,
) -> list[list[tuple[int, Box]]]:
    """Write a clip of ``frames`` frames at ``size`` (width, height) with OpenCV's
    ``VideoWriter`` and return each frame's (class id, box) truth.

    ``noise``: sigma (grey levels) of Gaussian sensor noise, new in every frame; flat
    synthetic frames compress to almost nothing and decode unrealistically fast without it.
    """
    width, height = size
    shapes = shapes if shapes is not None else lane_shapes(width, height, frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise CenterNetError(f"cannot write {path} with codec {codec!r}")
    truth = []
    try:
        for index in range(frames):
            image, boxes = render_frame(shapes, index, width, height)
            if noise > 0:
                grain = np.random.default_rng(index).standard_normal(image.shape, np.float32)
                image = np.clip(image + grain * np.float32(noise), 0, 255).astype(np.uint8)
            writer.write(image)
            truth.append(boxes)
    finally:
        writer.release()
    return truth
