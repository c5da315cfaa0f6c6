"""Engines that run a model file: ONNX Runtime, OpenVINO (also its own IR ``.xml``),
torch (checkpoints); ``auto`` (the default) picks the fastest one installed for the file.

Optional engines are imported only when asked for, so inference through ONNX Runtime
never imports torch.
"""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path

from centernet._lazy import lazy_exports
from centernet.engines.base import RUNTIME_PRECISIONS, Engine, EngineOptions
from centernet.errors import CenterNetError, MissingDependencyError
from centernet.modelfile.openvino_ir import is_ir

ENGINES = ("auto", "onnxruntime", "openvino", "torch")


#: Architectures with DCNv2 layers: ONNX ``DeformConv``, which OpenVINO cannot convert.
_DEFORM_CONV_ARCHS = ("dla_34", "resdcn_")


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def auto_engine(path: Path, options: EngineOptions | None = None) -> str:
    """What ``engine="auto"`` runs ``path`` with.

    torch for a checkpoint, openvino for an OpenVINO IR. An ONNX file runs on OpenVINO on
    an x86-64 CPU where it is installed (measured faster than ONNX Runtime for every
    build, fp32 to int8-mixed, on AVX2-only, AVX-512 VNNI and AMX CPUs: BENCHMARKS.md,
    "Engine choice"), except for DCN models, which it cannot convert; on ONNX Runtime
    otherwise, and always with ``device="cuda"`` (its CUDA providers).
    """
    options = options or EngineOptions()
    if path.suffix in (".pth", ".pt"):
        return "torch"
    if is_ir(path):
        return "openvino"
    if options.device != "cpu" or not openvino_installed() or not _x86_64():
        return "onnxruntime"
    from centernet.modelfile.spec import read_file_spec

    try:
        arch = read_file_spec(path).arch
    except CenterNetError:
        return "onnxruntime"  # not a CenterNet file: let the engine say what is wrong
    return "onnxruntime" if arch.startswith(_DEFORM_CONV_ARCHS) else "openvino"


def _x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def open_engine(
    model: str | Path, engine: str = "auto", options: EngineOptions | None = None
) -> Engine:
    """Open ``model`` (.onnx, OpenVINO .xml or .pth) with the named engine; "auto" picks
    the fastest installed one for the file (``auto_engine``). An engine asked for by name
    that is not installed is refused with its install line."""
    options = options or EngineOptions()
    path = Path(model)
    if not path.is_file():
        raise CenterNetError(f"{path}: no such model file")
    if engine == "auto":
        engine = auto_engine(path, options)
    elif is_ir(path) and engine in ("onnxruntime", "torch"):
        raise CenterNetError(
            f"{path} is an OpenVINO IR: the {engine} engine cannot run it; "
            'use `engine="openvino"` (or auto)'
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


# the engines themselves, imported only when named (torch and OpenVINO are optional)
__getattr__, _, _engines = lazy_exports(
    __name__,
    {
        "OnnxRuntimeEngine": "onnxruntime",
        "OpenVinoEngine": "openvino",
        "cpu_has_native_bf16": "openvino",
        "TorchEngine": "torch",
    },
)

__all__ = [
    *_engines,
    "ENGINES",
    "RUNTIME_PRECISIONS",
    "Engine",
    "EngineOptions",
    "auto_engine",
    "open_engine",
    "openvino_installed",
]
