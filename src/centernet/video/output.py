"""What a video run writes: ``<name>.detections.jsonl`` (one line per processed frame) and,
on request, ``<name>.annotated.mp4`` drawn with ``draw.py``'s boxes at the source's size."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from centernet.datasets.coco import category_ids_for, class_fields, class_name_of
from centernet.errors import CenterNetError
from centernet.runtime.draw import draw_detections
from centernet.types import Detections


def output_name(location: str, taken: set[str]) -> str:
    """A file-name stem for a source's outputs, unique within ``taken`` (which it updates):
    a file's stem, "camera0", or a URL's last path part (else its host)."""
    if location.startswith("camera "):
        stem = "camera" + location.split()[1]
    elif "://" in location:
        rest = location.split("://", 1)[1].split("?", 1)[0].rstrip("/")
        host, _, path = rest.partition("/")
        stem = Path(path).stem if path else host.rsplit("@", 1)[-1]
    else:
        stem = Path(location).stem
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._") or "stream"
    name, n = stem, 1
    while name in taken:
        name = f"{stem}_{n}"
        n += 1
    taken.add(name)
    return name


def frame_record(
    index: int,
    timestamp: float,
    detections: Detections,
    class_names: list[str],
    track_ids: np.ndarray | None = None,
    category_ids: list[int] | None = None,
) -> dict[str, Any]:
    """One JSONL line: frame index, time (s) and ``detections``, each with its box (xyxy,
    source pixels, 0.01 px), score (1e-5, as ``detections.json``), class fields
    (``category_id``, ``class_index``, ``class_name``: docs/output-formats.md) and, when
    tracking, ``track_id``. The 0.2 columns (``boxes``, ``scores``, ``classes``, ``names``,
    ``track_ids``) follow, kept for one release."""
    category_ids = category_ids or category_ids_for(class_names)
    boxes = [[round(v, 2) for v in box] for box in detections.xyxy.tolist()]
    scores = [round(s, 5) for s in detections.scores.tolist()]
    classes = [int(c) for c in detections.class_ids]
    tracks = None if track_ids is None else [int(t) for t in track_ids]
    found = []
    for k, (box, score, cls) in enumerate(zip(boxes, scores, classes)):
        item = {"box": box, "score": score, **class_fields(cls, category_ids, class_names)}
        if tracks is not None:
            item["track_id"] = tracks[k]
        found.append(item)
    record: dict[str, Any] = {
        "frame": int(index),
        "time": round(float(timestamp), 6),
        "detections": found,
        # deprecated (0.2's columns): read `detections`
        "boxes": boxes,
        "scores": scores,
        "classes": classes,
        "names": [class_name_of(c, class_names) for c in classes],
    }
    if tracks is not None:
        record["track_ids"] = tracks
    return record


class DetectionsLog:
    """``<name>.detections.jsonl``, written a line at a time (flushed per line, so a run that
    is stopped keeps every frame it finished)."""

    def __init__(self, path: str | Path, class_names: list[str]) -> None:
        self.path = Path(path)
        self.class_names = class_names
        self.category_ids = category_ids_for(class_names)
        self._file = self.path.open("w", encoding="utf-8", buffering=1)

    def write(
        self,
        index: int,
        timestamp: float,
        detections: Detections,
        track_ids: np.ndarray | None = None,
    ) -> None:
        record = frame_record(
            index, timestamp, detections, self.class_names, track_ids, self.category_ids
        )
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


def box_labels(
    detections: Detections, class_names: list[str], track_ids: np.ndarray | None
) -> list[str] | None:
    """Labels with the track id first ("#3 circle 0.91"); None: draw.py's default."""
    if track_ids is None:
        return None
    labels = []
    for cls, score, track in zip(detections.class_ids, detections.scores, track_ids):
        name = class_name_of(int(cls), class_names)
        labels.append(f"{'#' + str(track) + ' ' if track >= 0 else ''}{name} {score:.2f}")
    return labels


class AnnotatedVideo:
    """``<name>.annotated.mp4``: each processed frame with its boxes (and track ids), at the
    source's size and frame rate (divided by the stride, so time runs as in the source)."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        size: tuple[int, int],
        class_names: list[str],
        codec: str = "mp4v",
    ) -> None:
        self.path = Path(path)
        self.size = size  # (width, height)
        self.class_names = class_names
        self.frames = 0
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), fps, size)
        if not self._writer.isOpened():
            raise CenterNetError(
                f"cannot write {self.path}: OpenCV has no {codec!r} encoder for it"
            )

    def write(
        self, image: np.ndarray, detections: Detections, track_ids: np.ndarray | None = None
    ) -> None:
        labels = box_labels(detections, self.class_names, track_ids)
        drawn = draw_detections(image, detections, self.class_names, labels)
        if (drawn.shape[1], drawn.shape[0]) != self.size:  # a stream that changed size
            drawn = cv2.resize(drawn, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(drawn)
        self.frames += 1

    def close(self) -> None:
        self._writer.release()
