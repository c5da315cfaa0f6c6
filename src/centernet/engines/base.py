"""The engine protocol: a float32 NCHW batch in, named output maps out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from centernet.types import ModelSpec


@dataclass(frozen=True)
class EngineOptions:
    """Settings shared by engines; each engine reads the ones it understands."""

    device: str = "cpu"  # "cpu" or "cuda"
    threads: int | None = None  # intra-op threads; None lets the engine choose
    graph_optimization: str = "all"  # onnxruntime: disable | basic | extended | all
    cache_dir: str | None = None  # openvino: compiled-model cache (default ~/.cache/centernet)
    arch: str | None = None  # torch engine: architecture of a checkpoint (else inferred)
    classes_file: str | None = None  # torch engine: class names of a checkpoint
    # torch engine: fix_res input (height, width); None: the checkpoint's own, else 512x512
    input_size: tuple[int, int] | None = None


@runtime_checkable
class Engine(Protocol):
    """Runs a CenterNet model. ``batch_size`` is the only batch it accepts, or None for any."""

    name: str
    spec: ModelSpec

    @property
    def batch_size(self) -> int | None: ...

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...
