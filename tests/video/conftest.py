"""Short clips of moving synthetic shapes (known boxes) and the bundled model at 256 px."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from centernet.video.synthetic import Box, write_clip

FPS = 25.0
SIZE = (256, 192)  # width, height
FRAMES = 40


@dataclass
class Clip:
    path: Path
    truth: list[list[tuple[int, Box]]]  # per frame: (class id, box) of each shape
    fps: float = FPS
    size: tuple[int, int] = SIZE

    @property
    def frames(self) -> int:
        return len(self.truth)


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video, decoded here with OpenCV's plain read loop (independent of
    centernet.video)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Clip:
    """40 frames (1.6 s at 25 fps), 256x192, mp4v: three shapes crossing in lanes."""
    path = tmp_path_factory.mktemp("clips") / "lanes.mp4"
    return Clip(path, write_clip(path, FRAMES, SIZE, FPS, "mp4v"))


@pytest.fixture(scope="session")
def mjpg_clip(tmp_path_factory) -> Clip:
    """The same scene as MJPG in AVI: a container FFmpeg still reads when cut short."""
    path = tmp_path_factory.mktemp("clips") / "lanes.avi"
    return Clip(path, write_clip(path, FRAMES, SIZE, FPS, "MJPG"))


@pytest.fixture(scope="session")
def shapes_model(tmp_path_factory) -> Path:
    """The bundled default model exported at 256x256 with a dynamic batch: it finds the
    clips' shapes at their own scale, 9x cheaper than at its native 768."""
    pytest.importorskip("torch")
    from centernet.demo import default_model_path
    from centernet.export.onnx_graph import ExportConfig, export_onnx
    from centernet.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(default_model_path())
    spec = loaded.model_spec((256, 256), None, extra={"checkpoint": "default_model.pth"})
    path = tmp_path_factory.mktemp("model") / "shapes256.onnx"
    export_onnx(loaded.model, path, spec, ExportConfig(dynamic_batch=True))
    return path
