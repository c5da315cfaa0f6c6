"""The OpenVINO IR back end: an fp32 export as an IR (``.xml`` + ``.bin``) at fp32, fp16
(weights) or int8 / int8-mixed quantized by NNCF.

The ONNX export is converted with ``openvino.convert_model``; int8 is NNCF post-training
quantization (``nncf.quantize``) on calibration images read through the inference
pre-processing, with NNCF's fast or full bias correction, which ONNX Runtime's
``quantize_static`` lacks. Activation ranges follow ``CalibrationConfig`` as the QDQ build
does (``range_estimator``): minmax, minmax-ma (the mean of each image's extremes, NNCF's
own default) and percentile (the mean per-image quantile); entropy has no NNCF
counterpart and is refused by ``config.check_build_config``. The IR holds its ModelSpec
in its runtime info (``openvino_ir.py``), which the openvino engine opens directly.

Layers are named as in the ONNX export: callers pass ONNX node names to keep in float
(``keep``), and ``openvino_names`` finds the op each one became, because conversion
renames convolutions (a Conv with a bias becomes ``<name>/WithoutBiases`` + a bias Add).
The decode (the heatmap Sigmoid and every op after it) always stays float, as in the QDQ
build, so that ``hm`` and ``hm_max`` stay exactly comparable for peak finding.

openvino and nncf are imported only inside the build: importing this module stays light
and torch-free; NNCF itself imports torch when present.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import onnx

from centernet.errors import CenterNetError
from centernet.modelfile.openvino_ir import IR_SUFFIX, write_ir_spec
from centernet.modelfile.spec import INPUT_NAME, load_centernet_onnx
from centernet.progress import Progress
from centernet.quantize.calibration import ImageCalibrationReader, calibration_paths
from centernet.quantize.config import (
    BuildConfig,
    BuildTarget,
)
from centernet.quantize.cost import convolution_macs, int8_share
from centernet.quantize.float_layers import KeptLayer, float_by_design
from centernet.quantize.nncf_common import (
    CalibrationBatches,
    import_backends,
    nncf_arguments,
    resolved_overflow_fix,
)
from centernet.quantize.nncf_graph import (
    CONVOLUTIONS,
    decode_ops,
    dequantize_convolutions,
    heard_outside_quiet,
    int8_convolutions,
    openvino_names,
    quiet_nncf,
)
from centernet.quantize.result import BuildResult
from centernet.types import ModelSpec

ACCURACY_CONTROL_REASON = "NNCF accuracy control reverted it to float (the boxes' budget)"
DECODE_REASON = "decode (the heatmap Sigmoid and what follows it): float keeps hm == hm_max exact"


def build_openvino(
    input_onnx: str | Path,
    output_xml: str | Path,
    config: BuildConfig,
    keep: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Write ``output_xml`` (+ ``.bin``): the fp32 export ``input_onnx`` at
    ``config.precision`` as an OpenVINO IR (``recipe.build`` has checked the config).

    ``keep`` maps ONNX node names to keep float to the reason (the head outputs, the
    layers asked for); the float layers by design are added. int8-mixed then runs the
    layer search on the quantized model (``ir_search.py``), or NNCF's accuracy control
    with the search's score and budget (``accuracy_control.py``)."""
    started = time.perf_counter()
    input_onnx, output_xml = Path(input_onnx), Path(output_xml)
    keep = dict(keep or {})
    _check_output(output_xml)
    onnx_model, spec = load_centernet_onnx(input_onnx)
    if spec.precision != "fp32":
        raise CenterNetError(
            f"{input_onnx} is already a {spec.precision} build; build from the fp32 export"
        )
    if config.dynamic_batch or config.batch:
        spec.batch = "dynamic" if config.dynamic_batch else int(config.batch)  # type: ignore[arg-type]
    int8 = config.precision.startswith("int8")
    batch = 1 if spec.dynamic_batch else int(spec.batch)
    calib = config.calibration
    paths = calibration_paths(calib.images, calib.count, batch) if int8 and calib else []
    ov, _ = import_backends(int8)
    model = _converted(ov, input_onnx, spec, config, progress)
    result = BuildResult(output_xml, spec, 0.0, 0, engine="openvino", ir=True)
    if int8:
        assert calib is not None
        model = _quantized(
            model, onnx_model, spec, paths, batch, config, keep, result, progress
        )
        spec.extra["calibration"] = {**calib.describe("openvino"), "count": len(paths)}
        spec.extra["calibration"].update(
            preset=config.nncf.preset, bias_correction=config.nncf.bias_correction,
            overflow_fix=resolved_overflow_fix(config.nncf),
        )  # fmt: skip
        spec.extra["kept_float"] = [asdict(k) for k in result.kept]
    spec.precision = config.precision
    spec.extra["target"] = "openvino"
    write_ir_spec(model, spec)
    output_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(output_xml), compress_to_fp16=config.precision == "fp16")
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() in CONVOLUTIONS]
    result.seconds = time.perf_counter() - started
    result.size_bytes = output_xml.stat().st_size + output_xml.with_suffix(".bin").stat().st_size
    result.nodes_quantized = len(int8_convolutions(model))
    result.nodes_total = len(convs)
    if int8:
        macs = convolution_macs(onnx_model, spec.input_size)
        result.int8_share = int8_share(macs, set(macs) - {k.node for k in result.kept})
    return result


def _converted(
    ov: Any, input_onnx: Path, spec: ModelSpec, config: BuildConfig, progress: Progress | None
) -> Any:
    """The ONNX export converted to an OpenVINO model, with the asked batch."""
    stage = f"{config.precision} (OpenVINO): converting the ONNX model"
    if progress:
        progress(stage, 0, 1)
    model = ov.convert_model(str(input_onnx))
    if config.dynamic_batch or config.batch:
        _set_batch(model, spec.batch)
    if progress:
        progress(stage, 1, 1)
    return model


def _quantized(
    model: Any,
    onnx_model: onnx.ModelProto,
    spec: ModelSpec,
    paths: list[Path],
    batch: int,
    config: BuildConfig,
    keep: dict[str, str],
    result: BuildResult,
    progress: Progress | None,
) -> Any:
    """NNCF's int8 model: post-training quantization, float where OpenVINO runs float
    here; int8-mixed then runs the task search on it, or NNCF's accuracy control."""
    import nncf

    result.kept = _layers_to_keep(onnx_model, keep)
    result.openvino_names = openvino_names(onnx_model, model, [k.node for k in result.kept])
    ignored = [*result.openvino_names.values(), *decode_ops(model)]
    stage = f"{config.precision} (NNCF): calibration"
    heard = heard_outside_quiet(progress)
    reader = ImageCalibrationReader(paths, spec, batch, INPUT_NAME, heard, stage)
    batches = CalibrationBatches(reader)
    assert config.calibration is not None
    arguments = nncf_arguments(config.nncf, config.calibration)
    method = config.search_method(BuildTarget("openvino", ir=True))
    mixed = config.precision == "int8-mixed"
    if mixed and method == "nncf":
        return _with_accuracy_control(
            model, batches, paths, spec, onnx_model, ignored, arguments, config, result,
            reader, progress,
        )  # fmt: skip
    float_model = model.clone()
    with quiet_nncf():
        model = nncf.quantize(
            model,
            nncf.Dataset(batches),
            subset_size=len(batches),
            ignored_scope=nncf.IgnoredScope(names=sorted(set(ignored)), validate=True),
            **arguments,
        )
    result.skipped_images = sorted(set(reader.skipped))
    result.kept += _float_where_openvino_runs_float(model)
    if mixed and method == "task":
        from centernet.quantize.ir_search import search_ir
        from centernet.quantize.search import describe_search, search_reason

        model, found = search_ir(model, float_model, onnx_model, spec, paths, config, progress)
        spec.extra["float_layer_search"] = describe_search(found, config.search, "openvino")
        result.search = found
        result.kept += [KeptLayer(layer.node, search_reason(layer)) for layer in found.chosen]
    return model


def _with_accuracy_control(
    model: Any,
    batches: CalibrationBatches,
    paths: list[Path],
    spec: ModelSpec,
    onnx_model: onnx.ModelProto,
    ignored: list[str],
    arguments: dict[str, Any],
    config: BuildConfig,
    result: BuildResult,
    reader: ImageCalibrationReader,
    progress: Progress | None,
) -> Any:
    """int8-mixed by NNCF's accuracy control with the search's score and budget."""
    from centernet.quantize.accuracy_control import quantize_with_accuracy_control
    from centernet.quantize.search import describe_search

    model, found = quantize_with_accuracy_control(
        model, batches, len(batches), paths, spec, onnx_model, ignored, arguments,
        config.search, progress,
    )  # fmt: skip
    spec.extra["float_layer_search"] = describe_search(found, config.search, "openvino", "nncf")
    result.search = found
    result.kept += [KeptLayer(layer.node, ACCURACY_CONTROL_REASON) for layer in found.chosen]
    result.skipped_images = sorted(set(reader.skipped))
    result.kept += _float_where_openvino_runs_float(model)
    return model


def _float_where_openvino_runs_float(model: Any) -> list[KeptLayer]:
    """Quantized convolutions OpenVINO's CPU plugin runs in float on this machine (e.g.
    the depthwise ConvTranspose where it has no int8 kernel for it) made float again:
    FakeQuantize around a float kernel only adds work."""
    from centernet.quantize.kernels import openvino_int8_convolutions

    quantized = {name.removesuffix("/WithoutBiases") for name in int8_convolutions(model)}
    runs = openvino_int8_convolutions(model)
    fallbacks = sorted(name for name in quantized if runs.get(name) is False)
    done = dequantize_convolutions(model, fallbacks)
    reason = "OpenVINO runs it in float on this CPU: int8 would only add FakeQuantize work"
    return [KeptLayer(name, reason) for name in done]


def _check_output(output_xml: Path) -> None:
    if output_xml.suffix.lower() != IR_SUFFIX:
        raise CenterNetError(
            f"an OpenVINO build is written as a .xml file (and its .bin), not {output_xml.name}"
        )


# ---------------------------------------------------------------- graph


def _layers_to_keep(onnx_model: onnx.ModelProto, keep: Mapping[str, str]) -> list[KeptLayer]:
    """The caller's float layers, then the by-design ones (each node once)."""
    kept = [KeptLayer(node, reason) for node, reason in keep.items()]
    named = set(keep)
    kept += [k for k in float_by_design(onnx_model, "openvino") if k.node not in named]
    return kept


def _set_batch(model: Any, batch: int | str) -> None:
    """Fix (or free) the batch dimension of the model's input; the outputs follow."""
    import openvino as ov

    port = model.inputs[0]
    shape = port.get_partial_shape()
    shape[0] = ov.Dimension(-1) if batch == "dynamic" else ov.Dimension(int(batch))
    model.reshape({port.get_any_name(): shape})












__all__ = ["build_openvino"]
