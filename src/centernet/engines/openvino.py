"""OpenVINO engine (CPU): runs the fp32, fp16 and QDQ int8 ONNX builds directly.

OpenVINO reads QDQ graphs and turns them into its own int8 kernels. A model is compiled
once per batch size with a static shape (faster than a dynamic compile), and compiled
blobs are kept in a cache folder so later runs start quickly.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from centernet.engines.base import EngineOptions
from centernet.errors import CenterNetError, MissingDependencyError, ModelFileError
from centernet.export import load_centernet_onnx

DEFAULT_CACHE = Path.home() / ".cache" / "centernet" / "openvino"


class OpenVinoEngine:
    name = "openvino"

    def __init__(self, path: str | Path, options: EngineOptions = EngineOptions()) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise MissingDependencyError("openvino", "openvino") from None
        if options.device != "cpu":
            raise CenterNetError("the openvino engine runs on the CPU here; use --device cpu")
        self.path = Path(path)
        _, self.spec = load_centernet_onnx(self.path)
        self.core = ov.Core()
        cache = Path(options.cache_dir) if options.cache_dir else DEFAULT_CACHE
        cache.mkdir(parents=True, exist_ok=True)
        self.core.set_property({"CACHE_DIR": str(cache)})
        self.config = {"PERFORMANCE_HINT": "LATENCY"}
        if options.threads:
            self.config["INFERENCE_NUM_THREADS"] = str(options.threads)
        try:
            self.model = self.core.read_model(str(self.path))
        except Exception as exc:
            raise ModelFileError(f"{self.path}: {_read_failure(str(exc))}") from None
        self.input_name = self.model.inputs[0].get_any_name()
        self.output_names = [o.get_any_name() for o in self.model.outputs]
        self._compiled: dict[tuple[int, ...], object] = {}

    @property
    def batch_size(self) -> int | None:
        return None if self.spec.dynamic_batch else int(self.spec.batch)

    def _compiled_for(self, shape: tuple[int, ...]):
        compiled = self._compiled.get(shape)
        if compiled is None:
            model = self.model.clone()
            model.reshape({self.input_name: list(shape)})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self._compiled[shape] = compiled
        return compiled

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        compiled = self._compiled_for(tuple(batch.shape))
        results = compiled({self.input_name: batch})
        return {name: np.asarray(results[compiled.output(name)]) for name in self.output_names}


def _read_failure(text: str) -> str:
    """A one-line reason from OpenVINO's multi-line conversion report."""
    missing = re.search(r"No conversion rule found for operations: (.+)", text)
    if missing:
        ops = missing.group(1).strip()
        hint = " (the DCN layers of dla_34 and resdcn_*)" if "DeformConv" in ops else ""
        return (
            f"OpenVINO cannot run the ONNX operator(s) {ops}{hint}; "
            "use --engine onnxruntime for this model"
        )
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return f"OpenVINO cannot read this model ({first})"
