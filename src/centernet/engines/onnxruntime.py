"""ONNX Runtime engine: CPU by default, CUDA/TensorRT providers with ``device="cuda"``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from centernet.engines.base import EngineConfig, check_runtime_precision
from centernet.errors import CenterNetError, ModelFileError
from centernet.types import ModelSpec

_CUDA_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def providers_for(device: str) -> list[str]:
    """Execution providers for ``device``; a clear error when CUDA ones are not installed."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        available = [p for p in _CUDA_PROVIDERS if p in ort.get_available_providers()]
        if not available:
            raise CenterNetError(
                "onnxruntime has no CUDA provider here; install onnxruntime-gpu "
                "(pip install onnxruntime-gpu) on a machine with CUDA"
            )
        return [*available, "CPUExecutionProvider"]
    raise CenterNetError(f"unknown device {device!r}; choose cpu or cuda")


def graph_optimization_level(name: str) -> ort.GraphOptimizationLevel:
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if name not in levels:
        raise CenterNetError(
            f"unknown graph optimisation level {name!r}; choose {', '.join(levels)}"
        )
    return levels[name]


class OnnxRuntimeEngine:
    """An exported CenterNet ONNX file in an ``ort.InferenceSession``."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, options: EngineConfig = EngineConfig()) -> None:
        self.path = Path(path)
        self.inference_precision = check_runtime_precision(self.name, options.precision, ("fp32",))
        session_options = ort.SessionOptions()
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        session_options.graph_optimization_level = graph_optimization_level(
            options.graph_optimization
        )
        session_options.log_severity_level = 3
        # Intra-op threads sleep instead of spinning between operators: the pipeline's
        # reader and decoder threads share the cores. Network-only speed is unchanged
        # (9.63 vs 9.57 img/s, int8 dlav0_34 on 2 cores) and end to end varies less
        # (6 rounds: 8.53-9.21 img/s against 7.74-9.08 with spinning; BENCHMARKS.md).
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = providers_for(options.device)
        try:
            self.session = ort.InferenceSession(
                str(self.path), session_options, providers=providers
            )
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{self.path}: cannot load as an ONNX model ({reason})") from None
        if options.device == "cuda" and not set(self.session.get_providers()) & set(
            _CUDA_PROVIDERS
        ):  # onnxruntime-gpu falls back to the CPU, with a log line, when CUDA cannot start
            raise CenterNetError(
                "onnxruntime could not start its CUDA provider here (no usable GPU or CUDA/"
                'cuDNN libraries); use `device="cpu"`'
            )
        metadata = self.session.get_modelmeta().custom_metadata_map
        if ModelSpec.METADATA_KEY not in metadata:
            raise ModelFileError(
                f"{self.path}: not a CenterNet export (no '{ModelSpec.METADATA_KEY}' metadata); "
                "make one with `centernet export`"
            )
        self.spec = ModelSpec.from_json(metadata[ModelSpec.METADATA_KEY])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_name = self.session.get_inputs()[0].name

    @property
    def batch_size(self) -> int | None:
        return None if self.spec.dynamic_batch else int(self.spec.batch)

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {self.input_name: batch})
        return dict(zip(self.output_names, outputs))
