"""A COCO-format detection set as CenterNet training samples (input + targets)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from centernet.datasets.coco import CocoAnnotations, CocoImage
from centernet.runtime.images import read_image
from centernet.runtime.preprocess import normalise_lut
from centernet.training.augment import (
    AugmentConfig,
    flip_horizontally,
    jitter_colour,
    sample_affine,
    transform_boxes,
)
from centernet.training.targets import build_targets
from centernet.types import COCO_MEAN, COCO_STD


class CenterNetTrainSet(Dataset):
    """Random-augmented (input, targets) pairs; epoch-and-index seeded, so reproducible."""

    def __init__(
        self,
        annotations: CocoAnnotations,
        images: list[CocoImage],
        image_dir: str | Path,
        augment: AugmentConfig,
        down_ratio: int = 4,
        max_objects: int = 128,
        mean: tuple[float, float, float] = COCO_MEAN,
        std: tuple[float, float, float] = COCO_STD,
        seed: int = 0,
    ) -> None:
        self.annotations = annotations
        self.images = images
        self.image_dir = Path(image_dir)
        self.augment = augment
        self.down_ratio = down_ratio
        self.max_objects = max_objects
        self.lut = normalise_lut(tuple(mean), tuple(std))
        self.class_of = {cid: i for i, cid in enumerate(annotations.category_ids)}
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def _boxes(self, image: CocoImage) -> tuple[np.ndarray, np.ndarray]:
        items = self.annotations.boxes.get(image.id, [])
        boxes = np.array([[x, y, x + w, y + h] for (x, y, w, h), _ in items], np.float32)
        classes = np.array([self.class_of[c] for _, c in items], np.int64)
        return boxes.reshape(-1, 4), classes

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        record = self.images[index]
        image = read_image(self.image_dir / record.file_name)
        boxes, classes = self._boxes(record)
        if rng.random() < self.augment.flip:
            image, boxes = flip_horizontally(image, boxes)
        height, width = image.shape[:2]
        matrix = sample_affine(width, height, self.augment, rng)
        size = self.augment.crop or self.augment.input_size
        warped = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR)
        if self.augment.colour:
            warped = jitter_colour(warped, rng)
        x = cv2.LUT(warped, self.lut).transpose(2, 0, 1)
        out = size // self.down_ratio
        targets = build_targets(
            transform_boxes(boxes, matrix) / self.down_ratio,
            classes,
            len(self.class_of),
            (out, out),
            self.max_objects,
        )
        return {
            "input": torch.from_numpy(np.ascontiguousarray(x)),
            "hm": torch.from_numpy(targets.hm),
            "wh": torch.from_numpy(targets.wh),
            "reg": torch.from_numpy(targets.reg),
            "ind": torch.from_numpy(targets.ind),
            "mask": torch.from_numpy(targets.mask),
        }
