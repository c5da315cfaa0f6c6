"""What several test modules share: the tiny model's constants and export, comparisons of
detections, awkward image files, and self-made annotations. (Fixtures are in conftest.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

TINY_WIDTH = 0.25  # DLA-34 with a quarter of the channels: same code path, milliseconds
TINY_CLASSES = ["circle", "square", "triangle"]
TINY_SIZE = (128, 128)


def make_tiny_network(num_classes: int = len(TINY_CLASSES), seed: int = 0):
    import torch

    from centernet.models import create_model, settle_batchnorm

    torch.manual_seed(seed)
    network = create_model("dlav0_34", num_classes, width=TINY_WIDTH)
    with torch.no_grad():  # boxes of a few cells and mid-cell centres, as a trained model gives
        network.wh[2].bias.fill_(6.0)
        network.reg[2].bias.fill_(0.5)
    return settle_batchnorm(network, TINY_SIZE)


def export_tiny(network, path: Path, **config_kwargs) -> Path:
    from centernet.export.onnx_graph import ExportConfig, export_onnx
    from centernet.types import ModelSpec

    spec = ModelSpec(
        arch="dlav0_34",
        num_classes=len(TINY_CLASSES),
        class_names=TINY_CLASSES,
        input_size=TINY_SIZE,
        extra={"arch_args": {"width": TINY_WIDTH}},
    )
    export_onnx(network, path, spec, ExportConfig(**config_kwargs))
    return path


def assert_detections_close(a, b, atol=1e-3, score_atol=1e-5):
    """The same boxes within float tolerance, as sets: near-equal scores may swap order, and
    a box at the top-K cut may be replaced by its near-tie, so the last score's band is
    left out of the comparison."""
    assert len(a) == len(b)
    floor = max(a.scores[-1], b.scores[-1]) + score_atol if len(a) else 0.0
    a, b = a[a.scores > floor], b[b.scores > floor]
    assert abs(len(a) - len(b)) <= 1  # one box may straddle the floor
    close = (
        (a.class_ids[:, None] == b.class_ids[None, :])
        & (np.abs(a.scores[:, None] - b.scores[None, :]) <= score_atol)
        & np.all(np.abs(a.xyxy[:, None, :] - b.xyxy[None, :, :]) <= atol, axis=2)
    )
    matched = min(len(a), len(b))
    assert close.any(axis=1).sum() >= matched and close.any(axis=0).sum() >= matched


def write_bad_and_odd_images(folder, photo) -> dict[str, str | None]:
    """Files of every awkward kind; value = the expected error fragment, None = readable."""
    data = photo.read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "text.jpg").write_text("this is not a picture\n")
    deep = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).astype(np.uint16)
    cv2.imwrite(str(folder / "deep16.png"), np.dstack([deep] * 3))
    cv2.imwrite(str(folder / "grey.png"), np.full((40, 50), 128, np.uint8))
    rgba = np.zeros((30, 20, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 255, 128
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    cv2.imwrite(str(folder / "one_pixel.png"), np.full((1, 1, 3), 200, np.uint8))
    return {
        "empty.jpg": "empty file",
        "truncated.jpg": "truncated JPEG",
        "text.jpg": "not a decodable image",
        "missing.jpg": "no such file",
        "deep16.png": None,
        "grey.png": None,
        "rgba.png": None,
        "one_pixel.png": None,
    }


def write_self_annotations(detector, paths, path, quantile=0.9):
    """Ground truth = every detection above a global score cut, so that each category's
    true positives outrank its false positives: a correct eval must give AP 1.0."""
    detections = detector(paths)
    cut = np.quantile(np.concatenate([d.scores for d in detections]), quantile)
    images, annotations = [], []
    for image_id, (p, dets) in enumerate(zip(paths, detections), start=7):
        images.append({"id": image_id, "file_name": p.name, "width": 1, "height": 1})
        keep = dets[dets.scores >= cut]
        for box, cls in zip(keep.xywh, keep.class_ids):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) * 10 + 3,
                    "bbox": box.tolist(),
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i * 10 + 3, "name": n} for i, n in enumerate(TINY_CLASSES)]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
