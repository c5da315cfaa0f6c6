"""A deterministic synthetic detection set: filled shapes on cluttered backgrounds, in COCO format.

No dataset can be downloaded on our machines, so the project makes its own. Image ``i`` of
seed ``s`` is drawn from ``numpy.random.default_rng([s, i])`` with integer geometry and
OpenCV's non-antialiased fills, so the same seed gives the same pixels (and, with the same
OpenCV/libjpeg, the same JPEG bytes) on any machine, and images can be made in any order.

What makes it hard enough that a good model stays below AP 1.0: objects from 16 px to
nearly half the image, low-contrast colours, overlaps (later shapes hide parts of
earlier ones; boxes stay those of the whole shape), and clutter that is not an object
(lines, arcs, outlines, elongated ellipses, noise, blur).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("circle", "square", "triangle", "cross", "star")


@dataclass(frozen=True)
class SynthConfig:
    """Ranges the generator draws from."""

    min_side: int = 300
    max_side: int = 1000
    min_objects: int = 1
    max_objects: int = 10
    min_object: int = 16  # pixels, longest side of the smallest shape
    max_object_fraction: float = 0.45  # of the image's shorter side
    max_overlap: float = 0.35  # intersection / smaller box area: above it, redraw the position
    keep_inside: bool = False  # whole shapes only (no shape cut by the image border)
    shapes: tuple[int, ...] | None = None  # draw only these class ids (all by default)
    clutter: bool = True
    noise: bool = True
    jpeg_quality: int = 90


@dataclass(frozen=True)
class SynthObject:
    class_id: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 inclusive pixel bounds of the drawn shape
    colour: tuple[int, int, int]

    @property
    def xywh(self) -> list[float]:
        x1, y1, x2, y2 = self.box
        return [float(x1), float(y1), float(x2 - x1 + 1), float(y2 - y1 + 1)]


@dataclass
class SynthSample:
    image: np.ndarray  # BGR uint8, as written
    clean: np.ndarray  # before noise and blur: each shape's pixels are exactly its colour
    objects: list[SynthObject] = field(default_factory=list)


def _shape_polygons(class_id: int, size: float, angle: float) -> list[np.ndarray]:
    """Polygons (float, centred on 0) of one shape of longest extent about ``size``."""
    r = size / 2

    def rotate(points: np.ndarray) -> np.ndarray:
        c, s = math.cos(angle), math.sin(angle)
        return points @ np.array([[c, s], [-s, c]])

    name = CLASSES[class_id]
    if name == "square":
        side = r * math.sqrt(2) * 0.75
        return [rotate(np.array([[-side, -side], [side, -side], [side, side], [-side, side]]))]
    if name == "triangle":
        t = angle + np.array([0, 2, 4]) * math.pi / 3
        return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)]
    if name == "cross":
        arm, half = r, r * 0.3
        bar = np.array([[-arm, -half], [arm, -half], [arm, half], [-arm, half]])
        return [rotate(bar), rotate(bar[:, ::-1])]
    if name == "star":
        t = angle + np.arange(10) * math.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        return [np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)]
    raise ValueError(name)  # circles are drawn with cv2.circle


def draw_shape(
    canvas: np.ndarray, class_id: int, cx: int, cy: int, size: int, angle: float, colour
) -> tuple[int, int, int, int] | None:
    """Draw a filled shape; return the tight box of its pixels (None if off-canvas)."""
    height, width = canvas.shape[:2]
    pad = size // 2 + 2
    x0, y0 = cx - pad, cy - pad  # local patch keeps the mask small
    mask = np.zeros((2 * pad + 1, 2 * pad + 1), np.uint8)
    if CLASSES[class_id] == "circle":
        cv2.circle(mask, (pad, pad), max(2, size // 2), 255, -1, lineType=cv2.LINE_8)
    else:
        polys = [np.round(p + pad).astype(np.int32) for p in _shape_polygons(class_id, size, angle)]
        for poly in polys:
            cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_8)
    # clip the patch to the canvas
    ys, xs = np.nonzero(mask)
    ys, xs = ys + y0, xs + x0
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    if inside.sum() < 0.6 * len(xs):  # mostly outside: not a fair object
        return None
    xs, ys = xs[inside], ys[inside]
    canvas[ys, xs] = colour
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _random_colour(rng: np.random.Generator, near: np.ndarray | None = None) -> tuple[int, ...]:
    if near is not None and rng.random() < 0.2:  # low contrast against the background
        colour = np.clip(near + rng.integers(-60, 61, 3), 0, 255)
    else:
        colour = rng.integers(0, 256, 3)
    return tuple(int(c) for c in colour)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A two-colour gradient in a random direction."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = rng.uniform(0, 2 * math.pi)
    ramp = np.add.outer(
        np.arange(height, dtype=np.float32) * np.float32(math.sin(t)),
        np.arange(width, dtype=np.float32) * np.float32(math.cos(t)),
    )
    ramp -= ramp.min()
    ramp /= max(np.float32(1e-6), ramp.max())
    image = np.empty((height, width, 3), np.uint8)
    for c in range(3):
        image[..., c] = np.float32(a[c]) + np.float32(int(b[c]) - int(a[c])) * ramp
    return image


def _clutter(rng: np.random.Generator, image: np.ndarray) -> None:
    """Things that are not objects: lines, arcs, outlines, long ellipses."""
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(3, 15))):
        kind = int(rng.integers(0, 4))
        colour = _random_colour(rng)
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        thickness = int(rng.integers(1, 4))
        if kind == 0:
            cv2.line(image, p, q, colour, thickness, lineType=cv2.LINE_8)
        elif kind == 1:
            axes = (int(rng.integers(10, 120)), int(rng.integers(10, 120)))
            start = int(rng.integers(0, 360))
            cv2.ellipse(
                image,
                p,
                axes,
                0,
                start,
                start + int(rng.integers(30, 200)),
                colour,
                thickness,
                lineType=cv2.LINE_8,
            )
        elif kind == 2:
            cv2.rectangle(
                image,
                p,
                (p[0] + int(rng.integers(10, 150)), p[1] + int(rng.integers(10, 150))),
                colour,
                thickness,
            )
        else:  # a filled ellipse at least 2.5:1, so it is not a circle
            minor = int(rng.integers(3, 20))
            axes = (int(minor * rng.uniform(2.5, 6)), minor)
            cv2.ellipse(
                image, p, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, lineType=cv2.LINE_8
            )


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over the smaller box: a shape must never hide most of another."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return ix * iy / float(min(area_a, area_b))


def render_sample(seed: int, index: int, config: SynthConfig = SynthConfig()) -> SynthSample:
    """Draw image ``index`` of set ``seed``."""
    rng = np.random.default_rng([seed, index])
    width = int(rng.integers(config.min_side, config.max_side + 1))
    height = int(rng.integers(config.min_side, config.max_side + 1))
    image = _background(rng, height, width)
    if config.clutter:
        _clutter(rng, image)
    objects: list[SynthObject] = []
    biggest = max(config.min_object + 1, int(config.max_object_fraction * min(height, width)))
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        for _attempt in range(10):
            # log-uniform size: as many small objects as large ones
            size = int(round(math.exp(rng.uniform(math.log(config.min_object), math.log(biggest)))))
            margin = size // 2 + 2 if config.keep_inside else 0
            if 2 * margin >= min(width, height):
                continue
            cx = int(rng.integers(margin, width - margin))
            cy = int(rng.integers(margin, height - margin))
            guess = (cx - size // 2, cy - size // 2, cx + size // 2, cy + size // 2)
            if all(_overlap(guess, o.box) <= config.max_overlap for o in objects):
                break
        else:
            continue
        class_id = int(rng.integers(0, len(CLASSES)))
        if config.shapes is not None:
            class_id = config.shapes[class_id % len(config.shapes)]
        colour = _random_colour(rng, near=image[min(cy, height - 1), min(cx, width - 1)])
        box = draw_shape(image, class_id, cx, cy, size, float(rng.uniform(0, 2 * math.pi)), colour)
        if box is not None:
            objects.append(SynthObject(class_id, box, colour))
    clean = image.copy()
    if config.noise:
        sigma = np.float32(rng.uniform(0, 12))
        noise = rng.standard_normal(image.shape, dtype=np.float32) * sigma
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        if rng.random() < 0.3:
            image = cv2.GaussianBlur(image, (3, 3), 0)
    return SynthSample(image=image, clean=clean, objects=objects)


def write_dataset(
    out: str | Path,
    count: int,
    seed: int = 0,
    config: SynthConfig = SynthConfig(),
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``count`` JPEGs to ``out/images`` and ``out/instances.json``; returns the latter.

    ``progress`` is called with the number of images written so far.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        sample = render_sample(seed, index, config)
        name = f"{seed:04d}_{index:06d}.jpg"
        ok, data = cv2.imencode(
            ".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
        )
        assert ok
        (out / "images" / name).write_bytes(data.tobytes())
        height, width = sample.image.shape[:2]
        image_id = index + 1
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for obj in sample.objects:
            xywh = obj.xywh
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj.class_id + 1,
                    "bbox": xywh,
                    "area": xywh[2] * xywh[3],
                    "iscrowd": 0,
                }
            )
        if progress is not None:
            progress(index + 1)
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)]
    info = {"description": "centernet-deploy synthetic shapes", "seed": seed, "count": count}
    path = out / "instances.json"
    path.write_text(
        json.dumps(
            {"info": info, "images": images, "annotations": annotations, "categories": categories}
        )
    )
    return path
