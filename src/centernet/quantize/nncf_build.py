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
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from centernet.errors import CenterNetError, MissingDependencyError
from centernet.modelfile.openvino_ir import IR_SUFFIX, write_ir_spec
from centernet.modelfile.spec import INPUT_NAME, load_centernet_onnx
from centernet.progress import Progress
from centernet.quantize.calibration import ImageCalibrationReader, calibration_paths
from centernet.quantize.config import (
    DEFAULT_PERCENTILE,
    BuildConfig,
    CalibrationConfig,
    NncfConfig,
    SearchConfig,
)
from centernet.quantize.float_layers import KeptLayer, float_by_design
from centernet.quantize.nncf_graph import (
    CONVOLUTIONS,
    decode_ops,
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
    accuracy_control: SearchConfig | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Write ``output_xml`` (+ ``.bin``): the fp32 export ``input_onnx`` at
    ``config.precision`` as an OpenVINO IR (``recipe.build`` has checked the config).

    ``keep`` maps ONNX node names to keep float to the reason (int8-mixed's layers, the
    head outputs); the float layers by design are added. ``accuracy_control``: int8-mixed
    by NNCF's accuracy control with the layer search's score and budget
    (``accuracy_control.py``); without it only ``keep`` stays float."""
    started = time.perf_counter()
    input_onnx, output_xml = Path(input_onnx), Path(output_xml)
    keep = dict(keep or {})
    _check_output(config, output_xml, keep, accuracy_control)
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
    ov, _ = _import_backends(int8)
    model = _converted(ov, input_onnx, spec, config, progress)
    result = BuildResult(output_xml, spec, 0.0, 0, target="openvino")
    if int8:
        assert calib is not None
        model = _quantized(model, onnx_model, spec, paths, batch, config, keep,
                           accuracy_control, result, progress)  # fmt: skip
        spec.extra["calibration"] = {**calib.describe("openvino"), "count": len(paths)}
        spec.extra["calibration"].update(
            preset=config.nncf.preset, bias_correction=config.nncf.bias_correction
        )
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
    accuracy_control: SearchConfig | None,
    result: BuildResult,
    progress: Progress | None,
) -> Any:
    """NNCF's int8 model: plain post-training quantization, or with accuracy control."""
    import nncf

    result.kept = _layers_to_keep(onnx_model, keep)
    result.openvino_names = openvino_names(onnx_model, model, [k.node for k in result.kept])
    ignored = [*result.openvino_names.values(), *decode_ops(model)]
    stage = f"{config.precision} (NNCF): calibration"
    reader = ImageCalibrationReader(paths, spec, batch, INPUT_NAME, progress, stage)
    batches = CalibrationBatches(reader)
    assert config.calibration is not None
    arguments = nncf_arguments(config.nncf, config.calibration)
    if config.precision == "int8-mixed" and accuracy_control is not None:
        from centernet.quantize.accuracy_control import quantize_with_accuracy_control
        from centernet.quantize.search import describe_search

        model, found = quantize_with_accuracy_control(
            model, batches, len(batches), paths, spec, onnx_model, ignored, arguments,
            accuracy_control, progress,
        )  # fmt: skip
        spec.extra["float_layer_search"] = describe_search(found, accuracy_control, "nncf")
        result.search = found
        result.kept += [KeptLayer(layer.node, ACCURACY_CONTROL_REASON) for layer in found.chosen]
    else:
        with quiet_nncf():
            model = nncf.quantize(
                model,
                nncf.Dataset(batches),
                subset_size=len(batches),
                ignored_scope=nncf.IgnoredScope(names=sorted(set(ignored)), validate=True),
                **arguments,
            )
    result.skipped_images = sorted(set(reader.skipped))
    return model


def _check_output(
    config: BuildConfig,
    output_xml: Path,
    keep: Mapping[str, str],
    accuracy_control: SearchConfig | None,
) -> None:
    if output_xml.suffix.lower() != IR_SUFFIX:
        raise CenterNetError(
            f"an OpenVINO build is written as a .xml file (and its .bin), not {output_xml.name}"
        )
    if config.precision == "int8-mixed" and not keep and accuracy_control is None:
        raise CenterNetError(
            "int8-mixed needs the layers to keep in float (keep_float) or accuracy control"
        )


def _import_backends(int8: bool) -> tuple[Any, Any]:
    """openvino, and nncf for int8 builds; a missing one is a MissingDependencyError."""
    try:
        import openvino as ov
    except ImportError:
        raise MissingDependencyError("openvino", "openvino") from None
    if not int8:
        return ov, None
    try:
        import nncf
    except ImportError:
        raise MissingDependencyError("nncf", "openvino") from None
    return ov, nncf


def nncf_arguments(settings: NncfConfig, calibration: CalibrationConfig) -> dict[str, Any]:
    """``nncf.quantize`` keyword arguments for ``settings`` and the calibration method."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    advanced = AdvancedQuantizationParameters(
        disable_bias_correction=settings.bias_correction == "none"
    )
    estimator = range_estimator(calibration)
    if estimator is not None:
        advanced.activations_range_estimator_params = estimator
    return {
        "preset": nncf.QuantizationPreset(settings.preset),
        "target_device": nncf.TargetDevice(settings.target_device),
        "model_type": nncf.ModelType.TRANSFORMER if settings.model_type == "transformer" else None,
        "fast_bias_correction": settings.bias_correction != "full",
        "advanced_parameters": advanced,
    }


def range_estimator(calibration: CalibrationConfig) -> Any | None:
    """NNCF's activation range estimator for the calibration method (None: NNCF's own
    default, the mean of each image's extremes, which is what no method asks for).

    minmax: the extremes over all images; minmax-ma: their mean (NNCF's MEAN_MINMAX); the
    percentile method: the mean over images of the (1 - p/100) and p/100 quantiles."""
    from nncf.quantization.range_estimator import (
        AggregatorType,
        RangeEstimatorParameters,
        RangeEstimatorParametersSet,
        StatisticsCollectorParameters,
        StatisticsType,
    )

    method = calibration.method
    if method is None:
        return None
    if method == "minmax":
        return RangeEstimatorParametersSet.MINMAX
    if method == "minmax-ma":
        return RangeEstimatorParametersSet.MEAN_MINMAX
    if method == "percentile":
        outliers = 1.0 - (calibration.percentile or DEFAULT_PERCENTILE) / 100.0
        bound = StatisticsCollectorParameters(
            statistics_type=StatisticsType.QUANTILE,
            aggregator_type=AggregatorType.MEAN,
            quantile_outlier_prob=outliers,
        )
        return RangeEstimatorParameters(min=bound, max=bound)
    raise CenterNetError(f'`calib_method="{method}"` has no NNCF counterpart')


# ---------------------------------------------------------------- graph


def _layers_to_keep(onnx_model: onnx.ModelProto, keep: Mapping[str, str]) -> list[KeptLayer]:
    """The caller's float layers, then the by-design ones (each node once)."""
    kept = [KeptLayer(node, reason) for node, reason in keep.items()]
    named = set(keep)
    kept += [k for k in float_by_design(onnx_model) if k.node not in named]
    return kept


def _set_batch(model: Any, batch: int | str) -> None:
    """Fix (or free) the batch dimension of the model's input; the outputs follow."""
    import openvino as ov

    port = model.inputs[0]
    shape = port.get_partial_shape()
    shape[0] = ov.Dimension(-1) if batch == "dynamic" else ov.Dimension(int(batch))
    model.reshape({port.get_any_name(): shape})












# ---------------------------------------------------------------- calibration data


class CalibrationBatches:
    """The calibration reader as a re-iterable of input batches: NNCF walks its data set
    more than once (statistics, then bias correction), each walk from the first image."""

    def __init__(self, reader: ImageCalibrationReader) -> None:
        self.reader = reader
        self.walks = 0
        self._stage = reader.stage

    def __len__(self) -> int:
        return len(self.reader)

    def __iter__(self) -> Iterator[np.ndarray]:
        self.walks += 1
        self.reader.stage = self._stage if self.walks == 1 else f"{self._stage} (pass {self.walks})"
        self.reader.rewind()
        count = 0
        while (item := self.reader.get_next()) is not None:
            count += 1
            yield item[self.reader.input_name]
        if not count:  # else NNCF fails later with a message about empty statistics
            reasons = self.reader.skipped[:1] or ["fewer readable images than one batch"]
            raise CenterNetError(f"no calibration batch could be read ({reasons[0]})")


__all__ = ["build_openvino", "nncf_arguments", "range_estimator"]
