"""PyTorch network -> ONNX graph ending in sigmoid + 3x3 heatmap max-pool, with its ModelSpec.

The exported graph has one input ``input`` (N, 3, H, W) and the outputs ``hm_max``, ``hm``,
``wh``, ``reg``. Putting the max-pool in the graph (as the reference deployment does) lets
the engine do the only dense step of peak finding. After writing, the file is checked by
running it in ONNX Runtime against the torch model on the same input.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from centernet.errors import CenterNetError, ModelFileError
from centernet.types import ModelSpec

INPUT_NAME = "input"
MAP_OUTPUTS = ("hm_max", "hm", "wh", "reg")
TOPK_OUTPUTS = ("boxes", "scores", "classes")
OUTPUT_MODES = ("maps", "topk")
MIN_OPSET = 17
DEFORM_CONV_OPSET = 19  # ONNX's standard DeformConv (with the DCNv2 mask) starts here


class DeployModel(nn.Module):
    """Network + sigmoid on ``hm`` + 3x3 max-pool of the heatmap, as a 4-tuple of maps."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.network(x)
        hm = torch.sigmoid(out["hm"])
        hm_max = F.max_pool2d(hm, kernel_size=3, stride=1, padding=1)
        return hm_max, hm, out["wh"], out["reg"]


class TopKDeployModel(nn.Module):
    """DeployModel followed by ctdet_decode's peak top-K, all in the graph.

    Outputs ``boxes`` (N, K, 4) xyxy in output-map cells, ``scores`` (N, K) and
    ``classes`` (N, K): the host only maps K boxes through the inverse affine instead of
    reading two C x H x W maps.
    """

    def __init__(self, network: nn.Module, k: int = 100) -> None:
        super().__init__()
        self.maps = DeployModel(network)
        self.k = k

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hm_max, hm, wh, reg = self.maps(x)
        width = hm.shape[3]
        cells = hm.shape[2] * width
        peaks = torch.where(hm == hm_max, hm, torch.zeros_like(hm))
        scores, index = torch.topk(peaks.flatten(1), self.k, dim=1)
        classes = torch.div(index, cells, rounding_mode="floor")
        position = index - classes * cells
        ys = torch.div(position, width, rounding_mode="floor")
        xs = position - ys * width
        at = position.unsqueeze(1).expand(-1, 2, -1)
        offset = torch.gather(reg.flatten(2), 2, at)
        size = torch.gather(wh.flatten(2), 2, at)
        cx = xs.to(hm.dtype) + offset[:, 0]
        cy = ys.to(hm.dtype) + offset[:, 1]
        boxes = torch.stack(
            [cx - size[:, 0] / 2, cy - size[:, 1] / 2, cx + size[:, 0] / 2, cy + size[:, 1] / 2],
            dim=2,
        )
        return boxes, scores, classes


@dataclass(frozen=True)
class ExportConfig:
    """What shape of graph to write."""

    batch: int = 1
    dynamic_batch: bool = False
    dynamic_size: bool = False  # free H and W, needed for --keep-res
    opset: int = MIN_OPSET
    output_mode: str = "maps"  # "topk": boxes/scores/classes from an in-graph top-K
    verify: bool = True
    # Max abs difference of hm, ONNX Runtime vs torch. Float32 rounding alone reaches 7e-4
    # in deep untrained networks (resdcn_101: torch fp32 is 7e-4 from float64, ONNX
    # Runtime 4e-5); export errors are orders of magnitude larger.
    hm_tolerance: float = 1e-3


@dataclass
class ExportResult:
    path: Path
    spec: ModelSpec
    seconds: float
    opset: int = MIN_OPSET
    max_abs_diff: dict[str, float] = field(default_factory=dict)


def write_spec(model: onnx.ModelProto, spec: ModelSpec) -> None:
    """Store ``spec`` as JSON under metadata key ``centernet`` (replacing an old one)."""
    kept = [p for p in model.metadata_props if p.key != ModelSpec.METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = ModelSpec.METADATA_KEY
    entry.value = spec.to_json()


def read_spec(model: onnx.ModelProto) -> ModelSpec | None:
    for prop in model.metadata_props:
        if prop.key == ModelSpec.METADATA_KEY:
            return ModelSpec.from_json(prop.value)
    return None


def load_centernet_onnx(path: str | Path) -> tuple[onnx.ModelProto, ModelSpec]:
    """An exported model and its ModelSpec; a clear ModelFileError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelFileError(
            f"{path}: cannot load as an ONNX model ({type(exc).__name__})"
        ) from None
    spec = read_spec(model)
    if spec is None:
        raise ModelFileError(
            f"{path}: not a CenterNet export (no '{ModelSpec.METADATA_KEY}' metadata); "
            "make one with `centernet export`"
        )
    return model, spec


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
        result.max_abs_diff = verify_against_torch(deploy, path, example, outputs)
        key = "scores" if topk else "hm"
        if result.max_abs_diff[key] > config.hm_tolerance:
            raise CenterNetError(
                f"exported model disagrees with torch: max |{key}| difference "
                f"{result.max_abs_diff[key]:.2e} > {config.hm_tolerance:.0e}"
            )
    result.seconds = time.perf_counter() - started
    return result


def has_deformable_conv(network: nn.Module) -> bool:
    """Whether the network holds DCNv2 layers (exported as ONNX ``DeformConv``, opset 19)."""
    from centernet.models.dcn import DCN

    return any(isinstance(m, DCN) for m in network.modules())


def verify_against_torch(
    deploy: nn.Module, path: Path, example: torch.Tensor, outputs: tuple[str, ...] = MAP_OUTPUTS
) -> dict[str, float]:
    """Max abs difference per output between ONNX Runtime and torch on ``example``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip(outputs, session.run(list(outputs), {INPUT_NAME: example.numpy()})))
    with torch.no_grad():
        expected = dict(zip(outputs, (t.numpy() for t in deploy(example))))
    return {
        k: float(np.max(np.abs(got[k].astype(np.float64) - expected[k].astype(np.float64))))
        for k in outputs
    }
