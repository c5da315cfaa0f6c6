"""Calibration images for int8 builds, read through exactly the inference pre-processing.

``ImageCalibrationReader`` follows ONNX Runtime's ``CalibrationDataReader`` protocol
(``get_next() -> dict | None``), yielding ``{"input": batch}`` of the model's batch size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from centernet.errors import CenterNetError, ImageReadError
from centernet.progress import Progress
from centernet.runtime.images import IMAGE_SUFFIXES, read_image
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into
from centernet.types import ModelSpec


def calibration_paths(folder: str | Path, count: int, batch: int) -> list[Path]:
    """The first ``count`` images of ``folder`` (sorted: reproducible), checked for use.

    A missing or empty folder, a folder without images, or fewer images than one batch
    is a clear error; the count is rounded down to whole batches.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CenterNetError(f"calibration folder {folder} does not exist")
    paths = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not paths:
        raise CenterNetError(
            f"calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    if len(paths) < batch:
        raise CenterNetError(
            f"calibration folder {folder} has {len(paths)} images, fewer than one batch of {batch}"
        )
    usable = min(count, len(paths))
    return paths[: usable - usable % batch]


def preprocess_config_for(spec: ModelSpec) -> PreprocessConfig:
    """The fix_res pre-processing a model of ``spec`` runs with at inference."""
    return PreprocessConfig(
        input_size=spec.input_size, mean=spec.mean, std=spec.std, down_ratio=spec.down_ratio
    )


class ImageCalibrationReader(CalibrationDataReader):
    """Batches of pre-processed calibration images; unreadable files are skipped and listed."""

    def __init__(
        self,
        paths: list[Path],
        spec: ModelSpec,
        batch: int,
        input_name: str = "input",
        progress: Progress | None = None,
        stage: str = "calibration",
    ):
        self.paths = list(paths)
        self.batch = batch
        self.input_name = input_name
        self.config = preprocess_config_for(spec)
        self.skipped: list[str] = []
        self.progress = progress  # hears (stage, images read, images) after each batch
        self.stage = stage
        self._next = 0
        self._stop = len(self.paths)

    def rewind(self) -> None:
        self._next = 0
        self._stop = len(self.paths)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Read only batches [start_index, end_index): ORT calibrates in such strides, so a
        histogram calibrator holds one stride's activations in memory, not every image's."""
        self._next = start_index * self.batch
        self._stop = min(end_index * self.batch, len(self.paths))

    def __len__(self) -> int:
        return len(self.paths) // self.batch

    def get_next(self) -> dict[str, np.ndarray] | None:
        height, width = self.config.input_size
        batch = np.empty((self.batch, 3, height, width), np.float32)
        filled = 0
        while filled < self.batch and self._next < self._stop:
            path = self.paths[self._next]
            self._next += 1
            try:
                image = read_image(path)
            except ImageReadError as exc:
                self.skipped.append(str(exc))
                continue
            preprocess_into(image, self.config, batch[filled])
            filled += 1
        if self.progress is not None:
            self.progress(self.stage, self._next, len(self.paths))
        if filled < self.batch:
            return None
        return {self.input_name: batch}
