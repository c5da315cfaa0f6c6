"""The torch engine's run settings: precision, layout and the graph wrapper, on the CPU
(the CUDA-only parts are in tests/integration/runtime/device/test_stages.py, skipped without a
GPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from centernet.errors import CenterNetError
from tests.helpers import TINY_SIZE, make_tiny_network

torch = pytest.importorskip("torch")

from centernet.engines.torch_runner import (  # noqa: E402
    NetworkRunner,
    RunConfig,
    cudnn_arithmetic,
)

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")


@pytest.fixture(scope="module")
def network():
    """One settled tiny network; each runner gets a copy (runners convert theirs)."""
    return make_tiny_network()


@pytest.fixture(scope="module")
def batch():
    return torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, *TINY_SIZE)))


@pytest.fixture(scope="module")
def eager_fp32(network, batch):
    return NetworkRunner(copy.deepcopy(network), RunConfig())(batch.float())


def test_cpu_defaults_are_eager_contiguous_fp32():
    assert RunConfig.resolve("cpu") == RunConfig("cpu", "fp32", False, "eager")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"precision": "tf32"}, "tf32 is a CUDA mode"),
        ({"capture": "graph"}, 'CUDA graphs need `device="cuda"`'),
        ({"precision": "int4"}, "unknown precision 'int4' for the torch engine"),
        ({"capture": "jit"}, "unknown capture"),
    ],
)
def test_settings_refuse_what_cannot_run(fields, message):
    with pytest.raises(CenterNetError, match=message):
        RunConfig(**fields)


@no_cuda
def test_cuda_without_a_gpu_is_one_clear_error():
    with pytest.raises(CenterNetError, match='torch has no CUDA device here; use `device="cpu"`'):
        RunConfig.resolve("cuda")


def test_channels_last_gives_the_contiguous_maps(network, batch, eager_fp32):
    runner = NetworkRunner(copy.deepcopy(network), RunConfig(channels_last=True))
    weight = next(p for p in runner.model.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    for got, want in zip(runner(batch.float()), eager_fp32):
        assert got.dtype == torch.float32
        assert torch.allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_run_the_network_in_half_and_return_float32_maps(
    precision, network, batch, eager_fp32
):
    runner = NetworkRunner(copy.deepcopy(network), RunConfig(precision=precision))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert all(p.dtype == dtype for p in runner.model.parameters())
    hm_max, hm, wh, reg = runner(batch.float())
    assert all(t.dtype == torch.float32 for t in (hm_max, hm, wh, reg))
    assert torch.equal(hm_max, torch.nn.functional.max_pool2d(hm, 3, 1, 1))  # float32 peaks
    tolerance = 0.1 if precision == "bf16" else 0.02  # 8 vs 11 mantissa bits
    assert (hm - eager_fp32[1]).abs().max() < tolerance
    assert (wh - eager_fp32[2]).abs().max() < 20 * tolerance


def test_without_graphs_the_runner_calls_the_model_eagerly(network, batch, eager_fp32):
    runner = NetworkRunner(copy.deepcopy(network), RunConfig())
    buffer = runner.input_buffer((2, 3, *TINY_SIZE))
    buffer.copy_(batch.float())
    for allow_graph in (True, False):
        for got, want in zip(runner(buffer, allow_graph=allow_graph), eager_fp32):
            assert torch.equal(got, want)
    assert runner.graph_shapes == []  # nothing captured on the CPU
    runner.warm_up((1, 3, *TINY_SIZE))
    assert runner.input_buffer((2, 3, *TINY_SIZE)).data_ptr() != buffer.data_ptr()


def test_cudnn_settings_follow_the_precision():
    """fp32 on CUDA turns cuDNN's TF32 off (PyTorch allows it by default); tf32 turns it
    on; the CPU leaves cuDNN alone. Entering the flags works on a CPU build too."""
    before = torch.backends.cudnn.allow_tf32
    for precision, tf32 in [("fp32", False), ("tf32", True), ("fp16", False)]:
        with cudnn_arithmetic(RunConfig(device="cuda", precision=precision)):
            assert torch.backends.cudnn.allow_tf32 is tf32
            assert torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.allow_tf32 is before
    with cudnn_arithmetic(RunConfig()):
        assert torch.backends.cudnn.allow_tf32 is before


def test_a_shape_earns_a_graph_when_seen_again_up_to_a_cap(network):
    """The capture policy (CUDA only in use): keep_res folders of many sizes run eagerly
    instead of holding a graph per size."""
    from centernet.engines import torch_runner

    runner = NetworkRunner(copy.deepcopy(network), RunConfig())
    assert not runner._worth_a_graph((1, 3, 64, 64))
    assert runner._worth_a_graph((1, 3, 64, 64))
    runner._graphs = {(n, 3, 8, 8): None for n in range(torch_runner.MAX_GRAPHS)}
    assert runner._worth_a_graph((1, 3, 8, 8))  # captured already
    assert not runner._worth_a_graph((2, 3, 64, 64)) and not runner._worth_a_graph((2, 3, 64, 64))


def test_cuda_defaults_channels_last_for_half_precisions_only(monkeypatch):
    """cuDNN's NCHW kernels measured faster for fp32 on an H200, NHWC for tf32/fp16/bf16
    (BENCHMARKS.md "GPU"); CUDA is simulated here, the defaults are plain logic."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not RunConfig.resolve("cuda", "fp32").channels_last
    for precision in ("tf32", "fp16", "bf16"):
        settings = RunConfig.resolve("cuda", precision)
        assert settings.channels_last and settings.capture == "graph"
    assert RunConfig.resolve("cuda", "fp32", channels_last=True).channels_last  # asked for
    assert not RunConfig.resolve("cpu", "bf16").channels_last
