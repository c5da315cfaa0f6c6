"""Class names of a model: from a file, the 80 COCO names, or ``class_0..``."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from centernet.errors import CenterNetError


@lru_cache(maxsize=1)
def coco_class_names() -> tuple[str, ...]:
    """The 80 COCO class names in the order of the original CenterNet heatmap channels."""
    text = resources.files("centernet.assets").joinpath("coco_classes.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def read_class_names(path: str | Path) -> list[str]:
    """One name per line; blank lines ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CenterNetError(f"cannot read class names from {path}: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def class_names_for(num_classes: int, classes_file: str | Path | None = None) -> list[str]:
    """Names from ``classes_file``, else COCO's for 80 classes, else ``class_0..``."""
    if classes_file is not None:
        names = read_class_names(classes_file)
        if len(names) != num_classes:
            raise CenterNetError(
                f"{classes_file} lists {len(names)} class names; "
                f"the model has {num_classes} classes"
            )
        return names
    if num_classes == len(coco_class_names()):
        return list(coco_class_names())
    return [f"class_{i}" for i in range(num_classes)]


def is_coco_model(class_names: list[str]) -> bool:
    """True when the classes are exactly COCO's 80, so COCO's 91-id category space applies."""
    return tuple(class_names) == coco_class_names()
