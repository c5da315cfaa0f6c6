"""Engines that run a model file: ONNX Runtime, OpenVINO (also its own IR ``.xml``),
torch (checkpoints); ``auto`` (the default) picks the fastest one installed for the file.

Optional engines are imported only when asked for, so inference through ONNX Runtime
never imports torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
from dataclasses import dataclass, fields
from pathlib import Path

from centernet._lazy import lazy_exports
from centernet.engines.base import RUNTIME_PRECISIONS, Engine, EngineConfig
from centernet.errors import CenterNetError, MissingDependencyError
from centernet.modelfile.openvino_ir import is_ir


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine lives, what installs it, and which ``EngineConfig`` fields it reads
    (any other field set away from its default is refused: nothing is ignored)."""

    module: str  # under centernet.engines
    factory: str  # "Class" or "Class.classmethod": (path, EngineConfig) -> Engine
    extra: str | None  # the pip extra that installs it (None: the core install)
    package: str  # the import it needs
    options: frozenset[str]


#: The one list of engines: what --engine offers (with "auto") and what open_engine opens.
ENGINE_REGISTRY: dict[str, EngineEntry] = {
    "onnxruntime": EngineEntry(
        "onnxruntime", "OnnxRuntimeEngine", None, "onnxruntime",
        frozenset({"device", "threads", "graph_optimization", "precision"}),
    ),
    "openvino": EngineEntry(
        "openvino", "OpenVinoEngine", "openvino", "openvino",
        frozenset({"device", "threads", "cache_dir", "precision"}),
    ),
    "torch": EngineEntry(
        "torch", "TorchEngine.from_checkpoint", "torch", "torch",
        frozenset({"device", "threads", "arch", "classes_file", "input_size", "precision",
                   "channels_last", "capture"}),
    ),
}  # fmt: skip
ENGINES = ("auto", *ENGINE_REGISTRY)


#: Architectures with DCNv2 layers: ONNX ``DeformConv``, which OpenVINO cannot convert.
_DEFORM_CONV_ARCHS = ("dla_34", "resdcn_")


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def auto_engine(path: Path, options: EngineConfig | None = None) -> str:
    """What ``engine="auto"`` runs ``path`` with.

    torch for a checkpoint, openvino for an OpenVINO IR. An ONNX file runs on OpenVINO on
    an x86-64 CPU where it is installed (measured faster than ONNX Runtime for every
    build, fp32 to int8-mixed, on AVX2-only, AVX-512 VNNI and AMX CPUs: BENCHMARKS.md,
    "Engine choice"), except for DCN models, which it cannot convert; on ONNX Runtime
    otherwise, and always with ``device="cuda"`` (its CUDA providers).
    """
    options = options or EngineConfig()
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
    return default_onnx_engine(arch)


def default_onnx_engine(arch: str = "") -> str:
    """The engine ``auto`` runs an .onnx of ``arch`` with on this machine's CPU: OpenVINO
    on x86-64 where it is installed (not for DCN models, which it cannot convert), else
    ONNX Runtime. Builds lay their int8 out for it by default."""
    if not openvino_installed() or not _x86_64() or arch.startswith(_DEFORM_CONV_ARCHS):
        return "onnxruntime"
    return "openvino"


def _x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def open_engine(
    model: str | Path, engine: str = "auto", options: EngineConfig | None = None
) -> Engine:
    """Open ``model`` (.onnx, OpenVINO .xml or .pth) with the named engine; "auto" picks
    the fastest installed one for the file (``auto_engine``). An engine asked for by name
    that is not installed is refused with its install line; an option the engine does not
    read is refused, naming it."""
    options = options or EngineConfig()
    path = Path(model)
    if not path.is_file():
        raise CenterNetError(f"{path}: no such model file")
    asked = engine
    if engine == "auto":
        engine = auto_engine(path, options)
    elif is_ir(path) and engine in ("onnxruntime", "torch"):
        raise CenterNetError(
            f"{path} is an OpenVINO IR: the {engine} engine cannot run it; "
            'use `engine="openvino"` (or auto)'
        )
    entry = ENGINE_REGISTRY.get(engine)
    if entry is None:
        raise CenterNetError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    check_engine_options(engine, options, chosen_by_auto=asked == "auto")
    if importlib.util.find_spec(entry.package) is None:
        raise MissingDependencyError(entry.package, entry.extra or "core")
    module = importlib.import_module(f"centernet.engines.{entry.module}")
    factory = module
    for part in entry.factory.split("."):
        factory = getattr(factory, part)
    return factory(path, options)


def check_engine_options(engine: str, options: EngineConfig, chosen_by_auto: bool = False) -> None:
    """Refuse every ``EngineConfig`` field set away from its default that ``engine`` does
    not read (e.g. ``capture`` for ONNX Runtime): it would be ignored in silence."""
    entry = ENGINE_REGISTRY[engine]
    default = EngineConfig()
    unused = [
        item.name
        for item in fields(EngineConfig)
        if item.name not in entry.options
        and getattr(options, item.name) != getattr(default, item.name)
    ]
    if unused:
        how = f"the {engine} engine (chosen by auto for this file)" if chosen_by_auto else (
            f"the {engine} engine"
        )
        takers = [name for name, e in ENGINE_REGISTRY.items() if unused[0] in e.options]
        raise CenterNetError(
            f"`{unused[0]}` is not an option of {how}; it applies to the "
            f"{' and '.join(takers)} engine (`engine=\"{takers[0]}\"`)"
        )


def options_for(engine: str, options: EngineConfig) -> EngineConfig:
    """``options`` with the fields ``engine`` does not read set back to their defaults: for
    a caller that sweeps several engines with one configuration and says so by calling
    this (``open_engine`` refuses such fields otherwise)."""
    from dataclasses import replace

    default = EngineConfig()
    unread = {
        item.name: getattr(default, item.name)
        for item in fields(EngineConfig)
        if item.name not in ENGINE_REGISTRY[engine].options
    }
    return replace(options, **unread)


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
    "ENGINE_REGISTRY",
    "EngineEntry",
    "check_engine_options",
    "RUNTIME_PRECISIONS",
    "Engine",
    "EngineConfig",
    "auto_engine",
    "default_onnx_engine",
    "open_engine",
    "openvino_installed",
    "options_for",
]
