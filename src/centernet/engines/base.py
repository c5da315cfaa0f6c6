"""The engine protocol: a float32 NCHW batch in, named output maps out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from centernet.errors import CenterNetError
from centernet.types import ModelSpec


@dataclass(frozen=True)
class EngineConfig:
    """Settings shared by engines; each engine reads the ones it understands."""

    device: str = "cpu"  # "cpu" or "cuda"
    threads: int | None = None  # intra-op threads; None lets the engine choose
    graph_optimization: str = "all"  # onnxruntime: disable | basic | extended | all
    cache_dir: str | None = None  # openvino: compiled-model cache (default ~/.cache/centernet)
    arch: str | None = None  # torch engine: architecture of a checkpoint (else inferred)
    classes_file: str | None = None  # torch engine: class names of a checkpoint
    # torch engine: fix_res input (height, width); None: the checkpoint's own, else 512x512
    input_size: tuple[int, int] | None = None
    # Arithmetic at run time. None runs the model as built (an fp32 or int8 build in fp32,
    # never silently lower); "bf16" is an explicit request (openvino, CPUs with native bf16;
    # torch); "tf32" and "fp16" are the torch engine's (tf32 on CUDA only).
    precision: str | None = None
    # torch engine: NHWC memory layout; None: on for CUDA, off for the CPU
    channels_last: bool | None = None
    # torch engine: "eager", "graph" (a CUDA graph per batch size) or "compile"
    # (torch.compile reduce-overhead); None: graph on CUDA, eager on the CPU
    capture: str | None = None


#: Run-time precisions an engine may be asked for (None: the build's own). Each engine
#: accepts its own subset: onnxruntime fp32; openvino fp32, bf16; torch all four.
RUNTIME_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")

#: Where each precision is available, for the message when an engine lacks it.
_PRECISION_HINTS = {
    "bf16": 'use `engine="openvino"` (CPUs with native bf16) or the torch engine (a .pth)',
    "fp16": "use the torch engine (a .pth checkpoint)",
    "tf32": 'use the torch engine (a .pth checkpoint) with `device="cuda"`',
}


def check_runtime_precision(engine: str, precision: str | None, supported: tuple[str, ...]) -> str:
    """The precision of an engine's floating-point arithmetic, or a clear error.

    An int8 build still has float layers (heads, decode): this is what those run in.
    """
    wanted = precision or "fp32"
    if wanted not in RUNTIME_PRECISIONS:
        raise CenterNetError(
            f"unknown run-time precision {wanted!r}; choose from {', '.join(RUNTIME_PRECISIONS)}"
        )
    if wanted not in supported:
        raise CenterNetError(
            f"the {engine} engine has no run-time {wanted} mode; {_PRECISION_HINTS[wanted]}, "
            'or make a lower-precision model (a `precision="fp16|int8"` build)'
        )
    return wanted


@runtime_checkable
class Engine(Protocol):
    """Runs a CenterNet model. ``batch_size`` is the only batch it accepts, or None for any."""

    name: str
    spec: ModelSpec

    @property
    def batch_size(self) -> int | None: ...

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...
