"""Engines that run a model file: ONNX Runtime (default), OpenVINO (also its own IR
``.xml``), torch (checkpoints).

Optional engines are imported only when asked for, so inference through ONNX Runtime
never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from centernet.engines.base import RUNTIME_PRECISIONS, Engine, EngineOptions
from centernet.errors import CenterNetError, MissingDependencyError
from centernet.openvino_ir import is_ir

ENGINES = ("auto", "onnxruntime", "openvino", "torch")


def auto_engine(path: Path) -> str:
    """What ``engine="auto"`` runs ``path`` with: torch for a checkpoint, openvino for an
    OpenVINO IR, onnxruntime for anything else (an ONNX file)."""
    if path.suffix in (".pth", ".pt"):
        return "torch"
    return "openvino" if is_ir(path) else "onnxruntime"


def open_engine(
    model: str | Path, engine: str = "auto", options: EngineOptions | None = None
) -> Engine:
    """Open ``model`` (.onnx, OpenVINO .xml or .pth) with the named engine; "auto" picks
    by file type."""
    options = options or EngineOptions()
    path = Path(model)
    if not path.is_file():
        raise CenterNetError(f"{path}: no such model file")
    if engine == "auto":
        engine = auto_engine(path)
    elif is_ir(path) and engine in ("onnxruntime", "torch"):
        raise CenterNetError(
            f"{path} is an OpenVINO IR: the {engine} engine cannot run it; "
            "use --engine openvino (or auto)"
        )
    if engine == "onnxruntime":
        from centernet.engines.onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, options)
    if engine == "openvino":
        from centernet.engines.openvino import OpenVinoEngine

        return OpenVinoEngine(path, options)
    if engine == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise MissingDependencyError("torch", "torch") from None
        from centernet.engines.torch import TorchEngine

        return TorchEngine.from_checkpoint(path, options)
    raise CenterNetError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


__all__ = ["ENGINES", "RUNTIME_PRECISIONS", "Engine", "EngineOptions", "open_engine"]
