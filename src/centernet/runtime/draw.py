"""Annotated copies of images: each box with its class name and score, in a colour per
class (the report's chart is ``measure/plot.py``)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from centernet.types import Detections


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class (golden-ratio hue steps)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(
    image: np.ndarray,
    detections: Detections,
    class_names: list[str],
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Return a copy of ``image`` (BGR uint8) with the detections drawn, lowest score first.

    ``labels`` (one per box) replaces the default "class score" text, e.g. to add track ids.
    """
    canvas = image.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 1000)
    thickness = max(1, int(round(2 * scale)))
    for i in np.argsort(detections.scores, kind="stable"):
        x1, y1, x2, y2 = (int(round(v)) for v in detections.xyxy[i])
        cls = int(detections.class_ids[i])
        colour = class_colour(cls)
        name = class_names[cls] if cls < len(class_names) else str(cls)
        label = labels[i] if labels is not None else f"{name} {detections.scores[i]:.2f}"
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        top = max(y1, th + base)
        cv2.rectangle(canvas, (x1, top - th - base), (x1 + tw, top), colour, -1)
        cv2.putText(
            canvas,
            label,
            (x1, top - base),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return canvas
