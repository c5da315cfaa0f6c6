"""OpenVINO engine (CPU): runs the fp32, fp16 and QDQ int8 ONNX builds directly, and
OpenVINO IR builds (``.xml`` + ``.bin``, e.g. NNCF int8 from ``quantize/nncf_ir.py``).

OpenVINO reads QDQ graphs and turns them into its own int8 kernels. An IR carries its
ModelSpec in its runtime info, read from the ``.xml``'s tail without OpenVINO
(``modelfile.read_file_spec``); everything else is the same for both formats, bf16
included. The model is compiled
once, from its file, with the file's shapes: a dynamic-batch (or dynamic-size) export
gives one compiled model for every batch size and keep_res size. Compiled blobs are kept
in a cache folder; compiling from the file path lets a warm cache import the blob without
reading or converting the ONNX model (start-up in BENCHMARKS.md). A dynamic compile
measured within 2 % of a static one per batch size (int8 dlav0_34, batch 1: 84 vs 82 ms;
batch 4 and fp32 equal), and saves a compile (0.3-0.5 s) per new shape.

Precision is explicit: on CPUs with native bf16 (avx512_bf16, AMX) OpenVINO's CPU plugin
would otherwise run the floating-point part of every model in bf16, so an "fp32" build
would silently give bf16 boxes. Models compile with an f32 inference-precision hint
unless bf16 is asked for, and bf16 is refused on CPUs that cannot run it natively.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from centernet.engines.base import EngineConfig, check_runtime_precision
from centernet.errors import CenterNetError, MissingDependencyError, ModelFileError
from centernet.modelfile.spec import read_file_spec

CACHE_ENV = "CENTERNET_CACHE_DIR"  # overrides the cache root (tests point it at a tmp dir)
_HINTS = {"fp32": "f32", "bf16": "bf16"}  # our names -> OpenVINO's element types


def default_cache_dir() -> Path:
    """``$CENTERNET_CACHE_DIR/openvino``, else ``$XDG_CACHE_HOME/centernet/openvino``
    (``~/.cache`` when unset)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root) / "openvino"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "centernet" / "openvino"


def cpu_has_native_bf16(core) -> bool:
    """Whether OpenVINO's CPU plugin can run bf16 natively here (avx512_bf16 or AMX)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoEngine:
    name = "openvino"

    def __init__(self, path: str | Path, options: EngineConfig = EngineConfig()) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise MissingDependencyError("openvino", "openvino") from None
        if options.device != "cpu":
            raise CenterNetError('the openvino engine runs on the CPU here; use `device="cpu"`')
        self.path = Path(path)
        self.spec = read_file_spec(self.path)
        self.core = ov.Core()
        self.inference_precision = check_runtime_precision(
            self.name, options.precision, ("fp32", "bf16")
        )
        if self.inference_precision == "bf16" and not cpu_has_native_bf16(self.core):
            raise CenterNetError(
                "this CPU has no native bf16 (needs avx512_bf16 or AMX); "
                'run without `precision="bf16"` (fp32)'
            )
        cache = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        self.core.set_property({"CACHE_DIR": str(cache)})
        self.config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": _HINTS[self.inference_precision],
        }
        if options.threads:
            self.config["INFERENCE_NUM_THREADS"] = str(options.threads)
            if options.threads < _usable_cpus():
                # OpenVINO pins its threads to the first cores it may use: two 1-thread
                # processes (two Ray actors on a node) would share core 0 and each run at
                # half speed. Fewer threads than cores: let the OS place them.
                self.config["ENABLE_CPU_PINNING"] = False
        try:  # from the file, so that a warm cache imports the compiled blob directly
            self.compiled = self.core.compile_model(str(self.path), "CPU", self.config)
        except Exception as exc:
            raise ModelFileError(f"{self.path}: {_read_failure(str(exc))}") from None
        self.input_name = self.compiled.inputs[0].get_any_name()
        # a port can carry several names (an fp16 build's: "graph_output_cast_N" beside
        # "hm"); outputs are always taken by their CenterNet names
        self.output_names = [_output_name(port) for port in self.compiled.outputs]
        self._outputs = list(self.compiled.outputs)

    @property
    def batch_size(self) -> int | None:
        return None if self.spec.dynamic_batch else int(self.spec.batch)

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        results = self.compiled({self.input_name: batch})  # outputs are copies: safe to keep
        return {name: results[port] for name, port in zip(self.output_names, self._outputs)}


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _read_failure(text: str) -> str:
    """A one-line reason from OpenVINO's multi-line conversion report."""
    missing = re.search(r"No conversion rule found for operations: (.+)", text)
    if missing:
        ops = missing.group(1).strip()
        hint = " (the DCN layers of dla_34 and resdcn_*)" if "DeformConv" in ops else ""
        return (
            f"OpenVINO cannot run the ONNX operator(s) {ops}{hint}; "
            'use `engine="onnxruntime"` for this model'
        )
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return f"OpenVINO cannot read this model ({first})"


def _output_name(port) -> str:
    """The port's CenterNet output name, if it has one."""
    from centernet.modelfile.spec import MAP_OUTPUTS, TOPK_OUTPUTS

    known = sorted(set(port.get_names()) & {*MAP_OUTPUTS, *TOPK_OUTPUTS})
    return known[0] if known else port.get_any_name()
