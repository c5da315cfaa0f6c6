"""COCO annotation files, results JSON and the category-id maps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from centernet.classes import is_coco_model
from centernet.errors import CenterNetError
from centernet.types import Detections

#: COCO's 91-id category space for the 80 heatmap channels (upstream ``_valid_ids``).
# fmt: off
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
    78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)
# fmt: on


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int | None = None
    height: int | None = None


@dataclass
class CocoAnnotations:
    """What an ``instances.json`` says about its images, categories and boxes."""

    path: Path
    images: list[CocoImage]
    categories: list[dict[str, Any]]  # sorted by id
    boxes: dict[int, list[tuple[list[float], int]]] = field(default_factory=dict)
    """image id -> [(bbox xywh, category_id)], crowd regions left out."""

    @property
    def category_ids(self) -> list[int]:
        return [int(c["id"]) for c in self.categories]

    @property
    def category_names(self) -> list[str]:
        return [str(c.get("name", c["id"])) for c in self.categories]


def load_annotations(path: str | Path) -> CocoAnnotations:
    """Read the images and categories of a COCO annotation file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = [
            CocoImage(int(im["id"]), str(im["file_name"]), im.get("width"), im.get("height"))
            for im in data["images"]
        ]
        categories = sorted(data["categories"], key=lambda c: int(c["id"]))
        boxes: dict[int, list[tuple[list[float], int]]] = {}
        for ann in data.get("annotations", []):
            if not ann.get("iscrowd", 0):
                item = ([float(v) for v in ann["bbox"]], int(ann["category_id"]))
                boxes.setdefault(int(ann["image_id"]), []).append(item)
    except FileNotFoundError:
        raise CenterNetError(f"{path}: no such annotation file") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CenterNetError(f"{path}: not a COCO annotation file ({exc!r})") from None
    return CocoAnnotations(path, sorted(images, key=lambda im: im.id), categories, boxes)


def category_ids_for(
    class_names: list[str], annotations: CocoAnnotations | None = None
) -> list[int]:
    """COCO ``category_id`` of each class index.

    An annotation file's categories (sorted by id) win; else the 80 COCO classes map to
    COCO's 91-id space; else class index + 1.
    """
    if annotations is not None:
        ids = annotations.category_ids
        if len(ids) != len(class_names):
            raise CenterNetError(
                f"{annotations.path} has {len(ids)} categories; the model has "
                f"{len(class_names)} classes"
            )
        return ids
    if is_coco_model(class_names):
        return list(COCO_CATEGORY_IDS)
    return list(range(1, len(class_names) + 1))


def class_name_of(class_index: int, class_names: Sequence[str]) -> str:
    """The name of a class index (its number as text where the names run short)."""
    return class_names[class_index] if class_index < len(class_names) else str(class_index)


def class_fields(
    class_index: int, category_ids: Sequence[int], class_names: Sequence[str]
) -> dict[str, Any]:
    """The class of one detection as every output writes it (docs/output-formats.md):
    ``category_id`` (COCO's id, from ``category_ids_for``), ``class_index`` (the model's
    0-based channel) and ``class_name``."""
    return {
        "category_id": int(category_ids[class_index]),
        "class_index": int(class_index),
        "class_name": class_name_of(class_index, class_names),
    }


def detections_to_coco(
    detections: Detections,
    category_ids: list[int] | None,
    file_name: str | None = None,
    image_id: int | None = None,
    rounded: bool = True,
    class_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """COCO results entries (bbox xywh) for one image, with its file name when given.

    ``category_ids`` maps each class index to its ``category_id`` (None: the index
    itself, as in-memory scoring uses). With ``class_names`` (and ``category_ids``) each
    entry also carries ``class_index`` and ``class_name``, as the other outputs do.
    ``rounded`` (for files) keeps 2 decimals of a pixel and 5 of a score; scoring in memory
    keeps every bit.
    """
    entries = []
    xywh = detections.xywh
    for box, score, cls in zip(xywh.tolist(), detections.scores.tolist(), detections.class_ids):
        entry: dict[str, Any] = {}
        if file_name is not None:
            entry["file_name"] = file_name
        if image_id is not None:
            entry["image_id"] = image_id
        if category_ids is not None and class_names is not None:
            entry.update(class_fields(int(cls), category_ids, class_names))
        else:
            entry["category_id"] = int(cls) if category_ids is None else category_ids[int(cls)]
        entry["bbox"] = [round(v, 2) for v in box] if rounded else box
        entry["score"] = round(score, 5) if rounded else score
        entries.append(entry)
    return entries


def with_class_fields(
    entries: list[dict[str, Any]], category_ids: Sequence[int], class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """COCO results entries that carry only ``category_id`` (as written by code that had
    no class names) with ``class_index`` and ``class_name`` added after it, in the order
    ``detections_to_coco`` writes them."""
    index_of = {int(c): i for i, c in enumerate(category_ids)}
    completed = []
    for entry in entries:
        fields = class_fields(index_of[int(entry["category_id"])], category_ids, class_names)
        out: dict[str, Any] = {}
        for key, value in entry.items():
            if key == "category_id":
                out.update(fields)
            elif key not in fields:
                out[key] = value
        completed.append(out)
    return completed


def annotation_entry(
    ann_id: int, image_id: int, xyxy: Sequence[float], category_id: int
) -> dict[str, Any]:
    """One ground-truth annotation (bbox xywh, area, not crowd) from a corner box."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    w, h = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x0, y0, w, h],
        "area": w * h,
        "iscrowd": 0,
    }
