"""OpenVINO IR builds of an fp32 export: fp32, fp16 (weights) and int8 / int8-mixed by NNCF.

The ONNX export is converted with ``openvino.convert_model``; int8 is NNCF post-training
quantization (``nncf.quantize``) on calibration images read through the inference
pre-processing, with NNCF's fast or full bias correction, which ONNX Runtime's
``quantize_static`` lacks. The result is an IR (``.xml`` + ``.bin``) holding its ModelSpec
in its runtime info (``openvino_ir.py``), which the openvino engine opens directly.

Layers are named as in the ONNX export: callers pass ONNX node names to keep in float
(``keep_float``), and ``openvino_names`` finds the op each one became, because conversion
renames convolutions (a Conv with a bias becomes ``<name>/WithoutBiases`` + a bias Add).
The decode (the heatmap Sigmoid and every op after it) always stays float, as in the QDQ
build, so that ``hm`` and ``hm_max`` stay exactly comparable for peak finding.

openvino and nncf are imported only inside the build, so ``import centernet.build.quantize``
(which may import this module) stays torch-free; NNCF itself imports torch when present.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from centernet.build.calibration import ImageCalibrationReader, calibration_paths
from centernet.build.float_layers import KeptLayer, float_by_design
from centernet.build.nncf_graph import (
    CONVOLUTIONS,
    decode_ops,
    int8_convolutions,
    openvino_names,
    quiet_nncf,
)
from centernet.errors import CenterNetError, MissingDependencyError
from centernet.modelfile.openvino_ir import IR_SUFFIX, write_ir_spec
from centernet.modelfile.spec import INPUT_NAME, load_centernet_onnx
from centernet.progress import Progress
from centernet.types import ModelSpec

if TYPE_CHECKING:  # quantize.py calls this module: import it lazily, never in a cycle
    from centernet.build.sensitivity import SearchConfig

PRECISIONS = ("fp32", "fp16", "int8", "int8-mixed")
PRESETS = ("performance", "mixed")  # NNCF: symmetric / asymmetric activations
BIAS_CORRECTIONS = ("fast", "full", "none")
MODEL_TYPES = ("cnn", "transformer")
TARGET_DEVICES = ("CPU", "CPU_SPR", "ANY")
RANGE_ESTIMATORS = (
    "minmax",
    "mean_minmax",
    "median_minmax",
    "mean_no_outliers_minmax",
    "mean_quantile",
    "histogram",
)
ACCURACY_CONTROL_REASON = "NNCF accuracy control reverted it to float (the boxes' budget)"
DECODE_REASON = "decode (the heatmap Sigmoid and what follows it): float keeps hm == hm_max exact"


@dataclass(frozen=True)
class NncfSettings:
    """How NNCF quantizes (ignored by fp32/fp16 builds)."""

    preset: str = "performance"  # symmetric activations; "mixed": asymmetric
    bias_correction: str = "fast"  # "full": layer-by-layer (slower build), "none"
    range_estimator: str | None = None  # activation ranges; None: NNCF's default
    model_type: str = "cnn"  # "transformer" turns on NNCF's transformer-specific passes
    target_device: str = "CPU"


@dataclass(frozen=True)
class OpenVinoBuildConfig:
    precision: str = "int8"
    calib_images: str | Path | None = None  # folder of calibration images (int8)
    calib_count: int = 100
    # ONNX node name -> why it stays float (the caller's choice, e.g. int8-mixed's layers)
    keep_float: Mapping[str, str] = field(default_factory=dict)
    keep_float_by_design: bool = True  # also quantize.float_by_design (stem, ConvTranspose)
    batch: int | None = None  # a static batch; None keeps the export's
    dynamic_batch: bool = False
    nncf: NncfSettings = NncfSettings()
    # int8-mixed: NNCF's accuracy control with the layer search's score and budget
    # (``accuracy_control.py``); None: only the layers keep_float names stay float
    accuracy_control: SearchConfig | None = None


@dataclass
class OpenVinoBuildResult:
    path: Path  # the .xml; its .bin lies beside it
    spec: ModelSpec
    seconds: float
    size_bytes: int  # .xml + .bin
    nodes_quantized: int = 0
    nodes_total: int = 0
    kept: list[KeptLayer] = field(default_factory=list)  # ONNX names, as the QDQ build's
    openvino_names: dict[str, str] = field(default_factory=dict)  # ONNX node -> OpenVINO op
    skipped_images: list[str] = field(default_factory=list)
    search: object | None = None  # int8-mixed: the layer search's SearchResult (quantize.py)


def build_openvino(
    input_onnx: str | Path,
    output_xml: str | Path,
    config: OpenVinoBuildConfig,
    progress: Progress | None = None,
) -> OpenVinoBuildResult:
    """Write ``output_xml`` (+ ``.bin``): the fp32 export ``input_onnx`` at
    ``config.precision`` as an OpenVINO IR. Every input is checked before anything is
    written. int8-mixed differs from int8 only by what ``keep_float`` names, which the
    caller chooses (``quantize.build``), so it must name something."""
    started = time.perf_counter()
    input_onnx, output_xml = Path(input_onnx), Path(output_xml)
    _check_config(config, output_xml)
    onnx_model, spec = load_centernet_onnx(input_onnx)
    if spec.precision != "fp32":
        raise CenterNetError(
            f"{input_onnx} is already a {spec.precision} build; build from the fp32 export"
        )
    if config.dynamic_batch or config.batch:
        spec.batch = "dynamic" if config.dynamic_batch else int(config.batch)  # type: ignore[arg-type]
    int8 = config.precision.startswith("int8")
    search = None
    batch = 1 if spec.dynamic_batch else int(spec.batch)
    paths = calibration_paths(config.calib_images, config.calib_count, batch) if int8 else []
    ov, nncf = _import_backends(int8)

    stage = f"{config.precision} (OpenVINO)"
    if progress:
        progress(f"{stage}: converting the ONNX model", 0, 1)
    model = ov.convert_model(str(input_onnx))
    if config.dynamic_batch or config.batch:
        _set_batch(model, spec.batch)
    if progress:
        progress(f"{stage}: converting the ONNX model", 1, 1)

    kept: list[KeptLayer] = []
    names: dict[str, str] = {}
    skipped: list[str] = []
    if int8:
        kept = _layers_to_keep(onnx_model, config)
        names = openvino_names(onnx_model, model, [k.node for k in kept])
        ignored = [*names.values(), *decode_ops(model)]
        reader = ImageCalibrationReader(
            paths, spec, batch, INPUT_NAME, progress, f"{config.precision} (NNCF): calibration"
        )
        batches = CalibrationBatches(reader)
        if config.precision == "int8-mixed" and config.accuracy_control is not None:
            model, search = _with_accuracy_control(
                model, batches, paths, spec, onnx_model, ignored, config, progress
            )
            kept += [KeptLayer(layer.node, ACCURACY_CONTROL_REASON) for layer in search.chosen]
        else:
            with quiet_nncf():
                model = nncf.quantize(
                    model,
                    nncf.Dataset(batches),
                    subset_size=len(batches),
                    ignored_scope=nncf.IgnoredScope(names=sorted(set(ignored)), validate=True),
                    **nncf_arguments(config.nncf),
                )
        skipped = sorted(set(reader.skipped))
        spec.extra["calibration"] = {
            "images": Path(str(config.calib_images)).name,
            "count": len(paths),
            "method": f"nncf {config.nncf.range_estimator or 'default'} ranges",
            "preset": config.nncf.preset,
            "bias_correction": config.nncf.bias_correction,
        }
        spec.extra["kept_float"] = [asdict(k) for k in kept]
    spec.precision = config.precision
    spec.extra["target"] = "openvino"
    write_ir_spec(model, spec)
    output_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(output_xml), compress_to_fp16=config.precision == "fp16")
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() in CONVOLUTIONS]
    return OpenVinoBuildResult(
        path=output_xml,
        spec=spec,
        seconds=time.perf_counter() - started,
        size_bytes=output_xml.stat().st_size + output_xml.with_suffix(".bin").stat().st_size,
        nodes_quantized=len(int8_convolutions(model)),
        nodes_total=len(convs),
        kept=kept,
        openvino_names=names,
        skipped_images=skipped,
        search=search,
    )


def _with_accuracy_control(
    model: Any,
    batches: CalibrationBatches,
    paths: list[Path],
    spec: ModelSpec,
    onnx_model: onnx.ModelProto,
    ignored: list[str],
    config: OpenVinoBuildConfig,
    progress: Progress | None,
) -> tuple[Any, Any]:
    """NNCF's accuracy-controlled quantization; records what it measured in ``spec``."""
    from centernet.build.accuracy_control import quantize_with_accuracy_control
    from centernet.build.sensitivity import describe_search

    search = config.accuracy_control
    assert search is not None
    model, found = quantize_with_accuracy_control(
        model, batches, len(batches), paths, spec, onnx_model, ignored,
        nncf_arguments(config.nncf), search, progress,
    )  # fmt: skip
    spec.extra["float_layer_search"] = describe_search(found, search, method="nncf")
    return model, found


# ---------------------------------------------------------------- checks and settings


def _check_config(config: OpenVinoBuildConfig, output_xml: Path) -> None:
    choices = {
        "precision": (config.precision, PRECISIONS),
        "NNCF preset": (config.nncf.preset, PRESETS),
        "bias correction": (config.nncf.bias_correction, BIAS_CORRECTIONS),
        "model type": (config.nncf.model_type, MODEL_TYPES),
        "target device": (config.nncf.target_device, TARGET_DEVICES),
        "range estimator": (config.nncf.range_estimator or "minmax", RANGE_ESTIMATORS),
    }
    for what, (value, allowed) in choices.items():
        if value not in allowed:
            raise CenterNetError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}")
    if output_xml.suffix.lower() != IR_SUFFIX:
        raise CenterNetError(
            f"an OpenVINO build is written as a .xml file (and its .bin), not {output_xml.name}"
        )
    if config.precision.startswith("int8") and not config.calib_images:
        raise CenterNetError(f"{config.precision} needs calibration images (`calib_images`)")
    if (
        config.precision == "int8-mixed"
        and not config.keep_float
        and config.accuracy_control is None
    ):
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


def nncf_arguments(settings: NncfSettings) -> dict[str, Any]:
    """``nncf.quantize`` keyword arguments for ``settings``."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    advanced = AdvancedQuantizationParameters(
        disable_bias_correction=settings.bias_correction == "none"
    )
    if settings.range_estimator:
        advanced.activations_range_estimator_params = getattr(
            RangeEstimatorParametersSet, settings.range_estimator.upper()
        )
    return {
        "preset": nncf.QuantizationPreset(settings.preset),
        "target_device": nncf.TargetDevice(settings.target_device),
        "model_type": nncf.ModelType.TRANSFORMER if settings.model_type == "transformer" else None,
        "fast_bias_correction": settings.bias_correction != "full",
        "advanced_parameters": advanced,
    }




# ---------------------------------------------------------------- graph


def _layers_to_keep(onnx_model: onnx.ModelProto, config: OpenVinoBuildConfig) -> list[KeptLayer]:
    """The caller's float layers, then the by-design ones (each node once)."""
    kept = [KeptLayer(node, reason) for node, reason in config.keep_float.items()]
    if config.keep_float_by_design:
        named = set(config.keep_float)
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


__all__ = [
    "BIAS_CORRECTIONS",
    "NncfSettings",
    "OpenVinoBuildConfig",
    "OpenVinoBuildResult",
    "PRECISIONS",
    "PRESETS",
    "RANGE_ESTIMATORS",
    "build_openvino",
    "decode_ops",
    "int8_convolutions",
    "openvino_names",
]
