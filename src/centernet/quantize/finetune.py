"""Label-free quantization-aware fine-tuning of an int8 build (``build --qat-steps N``).

The int8 model learns to reproduce the float model's own outputs on the calibration
images: no labels. Steps:

1. the torch network is rebuilt from the fp32 export itself (architecture from its
   ModelSpec, each convolution's weights from the ONNX node of the same name: the export
   folded every BatchNorm into its convolution, so the network's BatchNorms become
   identities) and checked against the export on a calibration image;
2. NNCF quantizes a copy (``nncf.quantize`` on the torch model: per-channel symmetric
   int8 weights, asymmetric uint8 activations, ranges by the build's calibration method,
   as ONNX Runtime's QDQ build), keeping float the convolutions the int8 build keeps
   float (stem, up-sampling, head outputs);
3. the quantized copy is trained, fake-quantized, to minimise the distance of its hm, wh
   and reg to the float network's on random crops of the calibration images (the network
   is fully convolutional and its BatchNorms are folded, so a crop trains the same weights
   at a quarter of the cost of a 512x512 image); only the weights and biases move, the
   quantizer ranges stay as calibrated, because the build re-calibrates anyway;
4. the fine-tuned float weights are exported as an fp32 ONNX model with the same node
   names, which the usual int8 build then quantizes: the same QDQ graph, head rule and
   kept-float layers, for ONNX Runtime and OpenVINO alike.

The loss is the search's output error (``search_scoring.output_error``) in torch: normalised
squared error of the heatmap everywhere, of sizes and offsets where objects are.
torch and nncf are imported inside the functions: ``import centernet`` stays light.
"""

from __future__ import annotations

import contextlib
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from centernet.errors import CenterNetError, ImageReadError, MissingDependencyError
from centernet.progress import Progress
from centernet.quantize.config import CalibrationConfig, FinetuneConfig
from centernet.types import ModelSpec

STAGE = "int8 fine-tuning (label-free QAT)"


@contextlib.contextmanager
def plain_torch_quantizers() -> Iterator[bool]:
    """Run NNCF's fake quantizers as plain torch operations while fine-tuning.

    NNCF's torch quantizers call a C++ extension that it compiles on first use: about a
    minute on 2 cores, a C++ compiler required, and an error when the compile outlasts
    its 60 s timeout (slow or busy machines); its fallback is ``torch.compile``, another
    compiler. NNCF's own reference quantizer computes the same rounding and gradients with
    torch operations, and the convolutions dominate a training step, so fine-tuning uses
    that, uncompiled. Yields whether the swap was made (False: an NNCF whose internals
    moved, which then compiles as before)."""
    try:
        from nncf.torch.quantization.extensions import QuantizedFunctionsCPU
        from nncf.torch.quantization.reference import torch_executor
    except ImportError:
        yield False
        return
    if not hasattr(QuantizedFunctionsCPU, "_loaded_namespace"):
        yield False
        return
    before = QuantizedFunctionsCPU._loaded_namespace
    QuantizedFunctionsCPU._loaded_namespace = types.SimpleNamespace(
        Quantize_forward=torch_executor.forward, Quantize_backward=torch_executor.backward
    )
    try:
        yield True
    finally:
        QuantizedFunctionsCPU._loaded_namespace = before


@dataclass
class FinetuneResult:
    steps: int
    seconds: float
    loss_start: float  # mean loss over the first tenth of the steps
    loss_end: float  # and over the last tenth
    images: int  # trained on
    holdout_images: int = 0
    holdout_before: float = 0.0  # the int8 model's distance to the float outputs there
    holdout_after: float = 0.0
    applied: bool = True  # False: it did not help on the held-out images, weights unchanged


@plain_torch_quantizers()  # NNCF's quantizers as torch operations: nothing compiled
def finetune(
    float_model: onnx.ModelProto,
    spec: ModelSpec,
    paths: Sequence[Path],
    keep_float: Sequence[str],
    out_path: Path,
    config: FinetuneConfig,
    progress: Progress | None = None,
    calibration: CalibrationConfig | None = None,
) -> FinetuneResult:
    """Write ``out_path``: the fp32 export ``float_model`` with weights fine-tuned so that
    its int8 build reproduces the float outputs. ``keep_float`` names (as ONNX nodes) the
    convolutions the int8 build keeps float; the training copy's activation ranges follow
    the build's ``calibration`` settings (the extremes for entropy, which NNCF lacks)."""
    torch, nncf = _import_backends()
    from centernet.export.onnx_graph import ExportConfig, export_onnx

    started = time.perf_counter()
    images = _load_images(paths, spec)
    teacher = network_from_onnx(float_model, spec)
    _check_against_export(teacher, float_model, images[0])
    student = _quantized_copy(
        teacher, images[: config.init_images], keep_float, nncf, torch, calibration
    )
    held = config.holdout if len(images) >= 3 * config.holdout else 0
    held_out, images = images[len(images) - held :] if held else [], images[: len(images) - held]
    before = _distance(student, teacher, held_out, torch)
    weights = [p for n, p in student.named_parameters() if _is_weight(n, teacher)]
    for p in student.parameters():
        p.requires_grad_(False)
    for p in weights:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(weights, lr=config.lr)
    rng = np.random.default_rng(config.seed)
    losses = []
    for step in range(config.steps):
        if progress:
            progress(STAGE, step, config.steps)
        x = torch.from_numpy(_crops(images, config, rng))
        with torch.no_grad():
            target = teacher(x)
        loss = distillation_loss(student(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    if progress:
        progress(STAGE, config.steps, config.steps)
    after = _distance(student, teacher, held_out, torch)
    applied = not held or after < before
    tuned = network_from_onnx(float_model, spec)
    if applied:
        with torch.no_grad():
            tuned.load_state_dict(_plain_state(student, tuned), strict=True)
    export_onnx(tuned, out_path, _copy(spec), _export_config(spec, ExportConfig))
    tenth = max(1, len(losses) // 10)
    return FinetuneResult(
        steps=config.steps,
        seconds=time.perf_counter() - started,
        loss_start=float(np.mean(losses[:tenth])) if losses else 0.0,
        loss_end=float(np.mean(losses[-tenth:])) if losses else 0.0,
        images=len(images),
        holdout_images=held,
        holdout_before=before,
        holdout_after=after,
        applied=applied,
    )


def _distance(student: Any, teacher: Any, images: list[np.ndarray], torch: Any) -> float:
    """Mean ``distillation_loss`` of the student against the teacher on whole images."""
    if not images:
        return 0.0
    with torch.no_grad():
        losses = [
            float(distillation_loss(student(x), teacher(x)))
            for x in (torch.from_numpy(image[None]) for image in images)
        ]
    return float(np.mean(losses))


def distillation_loss(student: dict, teacher: dict) -> Any:
    """The search's output error in torch: hm (after the sigmoid) everywhere, wh and reg
    weighted by the teacher's heatmap peak over classes (where the decode reads them),
    each normalised by the teacher's own power so that the three count alike."""
    import torch

    hm_s, hm_t = torch.sigmoid(student["hm"]), torch.sigmoid(teacher["hm"])
    loss = (hm_s - hm_t).pow(2).mean() / hm_t.pow(2).mean().clamp_min(1e-12)
    where = hm_t.amax(dim=1, keepdim=True)
    for name in ("wh", "reg"):
        power = (where * teacher[name].pow(2)).sum().clamp_min(1e-12)
        loss = loss + (where * (student[name] - teacher[name]).pow(2)).sum() / power
    return loss


# ---------------------------------------------------------------- the torch network


def network_from_onnx(float_model: onnx.ModelProto, spec: ModelSpec) -> Any:
    """The torch network of an fp32 export, BatchNorms folded into the convolutions as
    the export has them, weights read from the ONNX nodes of the same names (modules the
    forward pass never uses have none, and keep their initial weights: ``finetune``
    checks the network against the export)."""
    import torch
    from torch import nn

    from centernet.models import create_model

    network = create_model(spec.arch, spec.num_classes, **spec.extra.get("arch_args", {}))
    for module in list(network.modules()):
        for child, sub in list(module.named_children()):
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                setattr(module, child, nn.Identity())
    modules = dict(network.named_modules())
    weights = {init.name: init for init in float_model.graph.initializer}
    for node in float_model.graph.node:  # the exporter shares equal weights through Identity
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    for node in float_model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        path = module_path(node.name)
        conv = modules.get(path)
        if conv is None or not hasattr(conv, "weight"):
            raise CenterNetError(
                f"cannot rebuild the torch network from this export: no module {path!r} "
                f"for {node.name}"
            )
        with torch.no_grad():
            conv.weight.copy_(_tensor(weights, node.input[1], torch))
            bias = _tensor(weights, node.input[2], torch) if len(node.input) > 2 else None
            if bias is not None:
                if conv.bias is None:
                    conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
                conv.bias.copy_(bias)
    return network.eval()


def module_path(node_name: str) -> str:
    """The torch module behind an exported node: ``/network/base/level1/level1.0/Conv`` ->
    ``base.level1.0`` (the exporter names a numbered child after its parent)."""
    scopes = node_name.strip("/").split("/")[1:-1]  # drop "network" and the op
    parts: list[str] = []
    for scope in scopes:
        if parts and scope.startswith(parts[-1] + "."):
            parts.append(scope[len(parts[-1]) + 1 :])
        else:
            parts.append(scope)
    return ".".join(parts)


def _tensor(weights: dict, name: str, torch: Any) -> Any:
    if name not in weights:
        raise CenterNetError(f"cannot rebuild the torch network: {name} is not a constant")
    return torch.from_numpy(numpy_helper.to_array(weights[name]).copy())


def _check_against_export(network: Any, float_model: onnx.ModelProto, image: np.ndarray) -> None:
    """The rebuilt network must compute what the export computes (hm before the sigmoid
    is compared through it, wh and reg directly)."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(
        float_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, {session.get_inputs()[0].name: image[None]})))
    with torch.no_grad():
        out = network(torch.from_numpy(image[None]))
    want = {"hm": torch.sigmoid(out["hm"]).numpy(), "wh": out["wh"].numpy()}
    for key, value in want.items():
        if key not in got:
            continue
        scale = max(1.0, float(np.abs(value).max()))
        if float(np.abs(got[key] - value).max()) > 1e-3 * scale:
            raise CenterNetError(
                f"the torch network rebuilt from the export disagrees with it on {key}: "
                "fine-tuning needs an export of a supported architecture"
            )


def _quantized_copy(
    network: Any,
    images: list[np.ndarray],
    keep_float: Sequence[str],
    nncf: Any,
    torch: Any,
    calibration: CalibrationConfig | None,
) -> Any:
    """NNCF's fake-quantized copy of ``network``, as ONNX Runtime's QDQ build quantizes:
    activation ranges by the build's ``calibration`` method and its tuning."""
    import copy
    import re

    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from centernet.quantize.nncf_common import range_estimator
    from centernet.quantize.nncf_graph import quiet_nncf

    calibration = calibration or CalibrationConfig("")
    method = calibration.method_for("onnxruntime")
    ranges = RangeEstimatorParametersSet.MINMAX  # entropy: no NNCF counterpart
    if method != "entropy":
        ranges = range_estimator(replace(calibration, method=method))

    ignored = [re.escape(module_path(name).replace(".", "/")) + "/.*" for name in keep_float]
    data = [torch.from_numpy(image[None]) for image in images]
    with quiet_nncf():
        return nncf.quantize(
            copy.deepcopy(network),
            nncf.Dataset(data),
            subset_size=len(data),
            preset=nncf.QuantizationPreset.MIXED,  # asymmetric uint8 activations, as ORT
            target_device=nncf.TargetDevice.CPU,
            fast_bias_correction=True,
            ignored_scope=nncf.IgnoredScope(patterns=ignored, validate=False),
            advanced_parameters=AdvancedQuantizationParameters(
                activations_range_estimator_params=ranges
            ),
        )


def _is_weight(name: str, network: Any) -> bool:
    """A convolution weight or bias of the network (not a quantizer's range)."""
    return name in dict(network.named_parameters())


def _plain_state(student: Any, plain: Any) -> dict:
    """The student's weights under the plain network's parameter names."""
    params = dict(student.named_parameters())
    return {name: params[name].detach().clone() for name, _ in plain.named_parameters()}


def _copy(spec: ModelSpec) -> ModelSpec:
    return ModelSpec.from_json(spec.to_json())


def _export_config(spec: ModelSpec, export_config: Any) -> Any:
    return export_config(
        batch=1 if spec.dynamic_batch else int(spec.batch),
        dynamic_batch=spec.dynamic_batch,
        dynamic_size=spec.dynamic_size,
        output_mode=spec.output_mode,
        verify=False,
    )


# ---------------------------------------------------------------- data


def _load_images(paths: Sequence[Path], spec: ModelSpec) -> list[np.ndarray]:
    """The calibration images through the inference pre-processing (fix_res)."""
    from centernet.quantize.calibration import preprocess_config_for
    from centernet.runtime.images import read_image
    from centernet.runtime.preprocess import preprocess_into

    config = preprocess_config_for(spec)
    images = []
    for path in paths:
        try:
            images.append(preprocess_into(read_image(path), config)[0])
        except ImageReadError:
            continue  # the calibration reader reports unreadable files
    if not images:
        raise CenterNetError("no readable calibration images to fine-tune on")
    return images


def _crops(images: list[np.ndarray], config: FinetuneConfig, rng: np.random.Generator):
    """``config.batch`` random crops (of whole images when ``crop`` is 0 or too large),
    each from a random image at an offset that keeps the network's stride (32)."""
    height, width = images[0].shape[1:]
    side_h = min(config.crop or height, height)
    side_w = min(config.crop or width, width)
    batch = np.empty((config.batch, 3, side_h, side_w), np.float32)
    for row in range(config.batch):
        image = images[rng.integers(len(images))]
        top = 32 * rng.integers((height - side_h) // 32 + 1)
        left = 32 * rng.integers((width - side_w) // 32 + 1)
        batch[row] = image[:, top : top + side_h, left : left + side_w]
    return batch


def _import_backends() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch (for `qat_steps`)", "torch") from None
    try:
        import nncf
    except ImportError:
        raise MissingDependencyError("nncf (for `qat_steps`)", "openvino") from None
    return torch, nncf


__all__ = [
    "FinetuneResult",
    "distillation_loss",
    "finetune",
    "module_path",
    "plain_torch_quantizers",
]
