"""The three kinds of object that cross module borders: Detections, Letterbox, ModelSpec."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from centernet import __version__
from centernet.errors import CenterNetError, MissingDependencyError

#: Channel statistics of the original CenterNet COCO models, in BGR order.
COCO_MEAN = (0.408, 0.447, 0.470)
COCO_STD = (0.289, 0.274, 0.278)
DEFAULT_INPUT_SIZE = (512, 512)  # (height, width): the original ctdet test size


@dataclass(frozen=True)
class Detections:
    """Boxes of one image in original-image pixels.

    ``xyxy`` is float32 (N, 4), ``scores`` float32 (N,), ``class_ids`` int64 (N,) holding
    the model's class index (0-based). Sorted by descending score.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4) or self.class_ids.shape != (n,) or self.scores.ndim != 1:
            raise ValueError(
                f"inconsistent Detections: xyxy {self.xyxy.shape}, scores {self.scores.shape}, "
                f"class_ids {self.class_ids.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: Any) -> Detections:
        """Select boxes with a mask, slice or index array; keeps the three arrays aligned."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(self.xyxy[index], self.scores[index], self.class_ids[index])

    @property
    def xywh(self) -> np.ndarray:
        """Boxes as (x, y, width, height), the COCO results format."""
        out = self.xyxy.copy()
        out[:, 2:] -= out[:, :2]
        return out

    def to_supervision(self, class_names: Sequence[str] | None = None) -> Any:
        """These boxes as a ``supervision.Detections`` (the ``video`` extra): ``xyxy``,
        ``confidence``, ``class_id`` (the class index) and, given ``class_names``, each
        box's name in ``data["class_name"]``, where supervision's annotators look for it."""
        sv = _supervision()
        data = {}
        if class_names is not None:
            names = [
                class_names[i] if 0 <= i < len(class_names) else str(i)
                for i in self.class_ids.tolist()
            ]
            data["class_name"] = np.array(names, dtype=str)
        return sv.Detections(
            xyxy=self.xyxy.astype(np.float32).reshape(-1, 4),
            confidence=self.scores.astype(np.float32),
            class_id=self.class_ids.astype(np.int64),
            data=data,
        )

    @classmethod
    def from_supervision(
        cls, detections: Any, class_names: Sequence[str] | None = None
    ) -> Detections:
        """Boxes from a ``supervision.Detections`` (ours after its filters or tracker, or
        another model's), sorted by descending score. Its ``class_id`` is the class index;
        without one, ``data["class_name"]`` is looked up in ``class_names``. Boxes without
        a confidence score 1."""
        count = len(detections)
        xyxy = np.asarray(detections.xyxy, dtype=np.float32).reshape(count, 4)
        confidence = detections.confidence
        scores = np.ones(count, np.float32) if confidence is None else confidence
        scores = np.asarray(scores, dtype=np.float32).reshape(count)
        if detections.class_id is not None:
            class_ids = np.asarray(detections.class_id, dtype=np.int64).reshape(count)
        else:
            class_ids = _indices_of(detections.data.get("class_name"), class_names, count)
        order = np.argsort(-scores, kind="stable")
        return cls(xyxy[order], scores[order], class_ids[order])


def _supervision() -> Any:
    """supervision, imported when used: ``import centernet`` never loads it."""
    try:
        import supervision
    except ImportError:
        raise MissingDependencyError("supervision", "video") from None
    return supervision


def _indices_of(names: Any, class_names: Sequence[str] | None, count: int) -> np.ndarray:
    """Class indices of boxes known only by name (``data["class_name"]``)."""
    if names is None or class_names is None:
        raise CenterNetError(
            "these supervision Detections have no class_id: give `class_names` to read "
            'their data["class_name"]'
        )
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(n) for n in names if str(n) not in index})
    if unknown:
        raise CenterNetError(f"class names not in `class_names`: {', '.join(unknown)}")
    return np.array([index[str(n)] for n in names], dtype=np.int64).reshape(count)


@dataclass(frozen=True)
class Letterbox:
    """The affine that maps one original image into the network input, and its inverses.

    Created by pre-processing, consumed by post-processing. ``center`` and ``scale`` are the
    upstream ``c`` and ``s``; ``to_input`` maps original pixels to input pixels;
    ``output_to_original`` maps output-map cells (input / down_ratio) back to original
    pixels, computed exactly as upstream ``transform_preds`` does.
    """

    center: tuple[float, float]
    scale: tuple[float, float]
    original_size: tuple[int, int]  # (width, height)
    input_size: tuple[int, int]  # (width, height)
    to_input: np.ndarray  # (2, 3) float64
    input_to_original: np.ndarray  # (2, 3) float64
    output_to_original: np.ndarray  # (2, 3) float64

    @staticmethod
    def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Apply a 2x3 affine to (..., 2) points."""
        points = np.asarray(points, dtype=np.float64)
        return points @ matrix[:, :2].T + matrix[:, 2]


@dataclass
class ModelSpec:
    """What a model file says about itself; stored as JSON in ONNX ``metadata_props``."""

    arch: str
    num_classes: int
    class_names: list[str]
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE  # (height, width) for fix_res
    mean: tuple[float, float, float] = COCO_MEAN
    std: tuple[float, float, float] = COCO_STD
    down_ratio: int = 4
    output_mode: str = "maps"  # "maps": hm_max/hm/wh/reg; "topk": boxes/scores/classes
    max_objects: int = 100  # K of ctdet_decode
    precision: str = "fp32"
    batch: int | str = 1  # an int, or "dynamic"
    dynamic_size: bool = False  # spatial dims free (needed by --keep-res)
    version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    METADATA_KEY = "centernet"

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]

    @property
    def dynamic_batch(self) -> bool:
        return self.batch == "dynamic"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            data = json.loads(text)
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError) as exc:
            raise CenterNetError(f"unreadable CenterNet model metadata: {exc}") from exc
