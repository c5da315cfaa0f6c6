"""Engine selection and options: clear messages for what is not installed or not known."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from centernet.engines import open_engine
from centernet.engines.onnxruntime import graph_optimization_level, providers_for
from centernet.errors import CenterNetError


def test_cpu_providers():
    assert providers_for("cpu") == ["CPUExecutionProvider"]


def test_cuda_without_cuda_provider_is_a_clear_error():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has onnxruntime-gpu")
    with pytest.raises(CenterNetError, match="install onnxruntime-gpu"):
        providers_for("cuda")


def test_graph_optimisation_levels():
    assert graph_optimization_level("basic") == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with pytest.raises(CenterNetError, match="unknown graph optimisation level"):
        graph_optimization_level("max")


def test_unknown_engine_and_missing_file(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(CenterNetError, match="unknown engine 'tensorflow'"):
        open_engine(tmp_path / "m.onnx", "tensorflow")
    with pytest.raises(CenterNetError, match="no such model file"):
        open_engine(tmp_path / "missing.onnx")
