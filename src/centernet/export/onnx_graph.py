"""PyTorch network -> ONNX graph ending in sigmoid + 3x3 heatmap max-pool, with its ModelSpec.

The exported graph has one input ``input`` (N, 3, H, W) and the outputs ``hm_max``, ``hm``,
``wh``, ``reg``. Putting the max-pool in the graph (as the reference deployment does) lets
the engine do the only dense step of peak finding. After writing, the file is checked by
running it in ONNX Runtime against the torch model on the same input.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from centernet.errors import CenterNetError
from centernet.modelfile.spec import INPUT_NAME, MAP_OUTPUTS, TOPK_OUTPUTS, write_spec
from centernet.models.deploy import DeployModel, TopKDeployModel
from centernet.types import ModelSpec

OUTPUT_MODES = ("maps", "topk")
MIN_OPSET = 17
DEFORM_CONV_OPSET = 19  # ONNX's standard DeformConv (with the DCNv2 mask) starts here


@dataclass(frozen=True)
class VerifyConfig:
    """When an export counts as equal to the torch model (errors relative to each output's
    largest magnitude, at least 1).

    Float32 rounding grows with depth and differs between CPUs (resdcn_101, untrained: torch
    float32 is 7e-4 from float64 on AVX2 and 1.5e-3 on AMX; ONNX Runtime 4e-5), so no fixed
    tolerance against torch fp32 both passes every correct export and fails every broken one.
    Instead: within ``tolerance`` of torch fp32 passes at once; otherwise both are compared
    with a float64 reference, and ONNX Runtime may be off by ``float32_factor`` times torch's
    own float32 error (or ``tolerance``), no more. Export bugs are orders of magnitude larger.
    """

    tolerance: float = 1e-4
    float32_factor: float = 4.0


@dataclass(frozen=True)
class ExportConfig:
    """What shape of graph to write."""

    batch: int = 1
    dynamic_batch: bool = False
    dynamic_size: bool = False  # free H and W, needed for --keep-res
    opset: int = MIN_OPSET
    output_mode: str = "maps"  # "topk": boxes/scores/classes from an in-graph top-K
    verify: bool = True
    check: VerifyConfig = field(default_factory=VerifyConfig)


@dataclass
class ExportCheck:
    """How the exported graph compares with the torch model on one random input."""

    vs_torch: dict[str, float]  # ONNX Runtime vs torch float32, per output (relative)
    onnx_error: dict[str, float] | None = None  # vs float64; None when not needed
    torch_error: dict[str, float] | None = None  # torch float32 vs float64: its own error
    failure: str | None = None  # why it failed, with the numbers

    @property
    def passed(self) -> bool:
        return self.failure is None

    def summary(self, name: str) -> str:
        """One phrase for the CLI, e.g. 'max |hm| diff vs torch 3.1e-06'."""
        if self.onnx_error is None or self.torch_error is None:
            return f"max |{name}| diff vs torch {self.vs_torch[name]:.1e}"
        return (
            f"|{name}| within float32 rounding (vs float64: ONNX Runtime "
            f"{self.onnx_error[name]:.1e}, torch {self.torch_error[name]:.1e})"
        )


@dataclass
class ExportResult:
    path: Path
    spec: ModelSpec
    seconds: float
    opset: int = MIN_OPSET
    check: ExportCheck | None = None
    arch_inferred: bool = False  # the architecture was guessed from a checkpoint's keys


def export_onnx(
    network: nn.Module, path: str | Path, spec: ModelSpec, config: ExportConfig = ExportConfig()
) -> ExportResult:
    """Trace ``network`` (returns a dict with hm/wh/reg) to ``path`` and verify it."""
    if config.opset < MIN_OPSET:
        raise CenterNetError(f"opset {config.opset} is too old; use {MIN_OPSET} or newer")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    height, width = spec.input_size
    if config.output_mode not in OUTPUT_MODES:
        raise CenterNetError(f"unknown output mode {config.output_mode!r}")
    topk = config.output_mode == "topk"
    outputs = TOPK_OUTPUTS if topk else MAP_OUTPUTS
    batch = 2 if config.dynamic_batch else config.batch
    multiple = 128 if spec.arch == "hourglass" else 32  # total down-sampling of the network
    if height % multiple or width % multiple:
        raise CenterNetError(
            f"{spec.arch} needs input sides that are multiples of {multiple}, not {height}x{width}"
        )
    opset = config.opset
    if has_deformable_conv(network):
        opset = max(opset, DEFORM_CONV_OPSET)
    deploy = (TopKDeployModel(network, spec.max_objects) if topk else DeployModel(network)).eval()
    example = torch.randn(batch, 3, height, width)
    axes: dict[str, dict[int, str]] = {}
    if config.dynamic_batch or config.dynamic_size:
        for name in (INPUT_NAME, *outputs):
            axes[name] = {}
            if config.dynamic_batch:
                axes[name][0] = "batch"
            if config.dynamic_size and (name == INPUT_NAME or not topk):
                axes[name].update({2: "height", 3: "width"})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            deploy,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(outputs),
            opset_version=opset,
            dynamic_axes=axes or None,
            do_constant_folding=True,
            dynamo=False,
        )
    spec.batch = "dynamic" if config.dynamic_batch else config.batch
    spec.dynamic_size = config.dynamic_size
    spec.output_mode = config.output_mode
    model = onnx.load(str(path))
    write_spec(model, spec)
    model.producer_name = "centernet-deploy"
    onnx.save(model, str(path))
    result = ExportResult(path=path, spec=spec, seconds=0.0, opset=opset)
    if config.verify:
        # top-K boxes and classes swap places on near-ties; their scores are continuous
        checked = ("scores",) if topk else outputs
        result.check = verify_against_torch(deploy, path, example, checked, config.check)
        if not result.check.passed:
            raise CenterNetError(f"exported model disagrees with torch: {result.check.failure}")
    result.seconds = time.perf_counter() - started
    return result


def has_deformable_conv(network: nn.Module) -> bool:
    """Whether the network holds DCNv2 layers (exported as ONNX ``DeformConv``, opset 19)."""
    from centernet.models.dcn import DCN

    return any(isinstance(m, DCN) for m in network.modules())


def verify_against_torch(
    deploy: nn.Module,
    path: Path,
    example: torch.Tensor,
    outputs: tuple[str, ...] = MAP_OUTPUTS,
    config: VerifyConfig = VerifyConfig(),
) -> ExportCheck:
    """Run ``path`` in ONNX Runtime and ``deploy`` in torch on ``example``; judge as
    ``VerifyConfig`` says (a float64 reference only when the quick comparison is not enough)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, {INPUT_NAME: example.numpy()})))
    torch32 = _run(deploy, example, names)
    check = ExportCheck({k: _relative_error(got[k], torch32[k]) for k in outputs})
    if max(check.vs_torch.values()) <= config.tolerance:
        return check
    exact = _run(copy.deepcopy(deploy).double(), example.double(), names)
    check.onnx_error = {k: _relative_error(got[k], exact[k]) for k in outputs}
    check.torch_error = {k: _relative_error(torch32[k], exact[k]) for k in outputs}
    allowed = {
        k: max(config.tolerance, config.float32_factor * check.torch_error[k]) for k in outputs
    }
    worst = max(outputs, key=lambda k: check.onnx_error[k] / allowed[k])
    if check.onnx_error[worst] > allowed[worst]:
        check.failure = (
            f"max |{worst}| error against a float64 reference is {check.onnx_error[worst]:.2e} "
            f"in ONNX Runtime but {check.torch_error[worst]:.2e} in torch float32 (relative "
            f"to the output's magnitude; allowed: {allowed[worst]:.2e}, the larger of "
            f"{config.tolerance:.0e} and {config.float32_factor:g}x torch's own error)"
        )
    return check


def _run(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {k: t.double().numpy() for k, t in zip(names, model(x))}


def _relative_error(got: np.ndarray, reference: np.ndarray) -> float:
    """Max abs difference over the reference's largest magnitude (at least 1)."""
    reference = reference.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(reference)))) if reference.size else 1.0
    return float(np.max(np.abs(got.astype(np.float64) - reference), initial=0.0)) / scale
