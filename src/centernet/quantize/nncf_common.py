"""NNCF's side of an OpenVINO IR build (``nncf_ir.py``) and its accuracy control: NNCF's
arguments from the build settings, the calibration method as NNCF's activation range
estimator, and the calibration images as the re-iterable data set NNCF walks. openvino
and nncf are imported inside functions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from centernet.errors import CenterNetError, MissingDependencyError
from centernet.measure.machine import cpu_model_and_flags
from centernet.quantize.calibration import ImageCalibrationReader
from centernet.quantize.config import DEFAULT_PERCENTILE, CalibrationConfig, NncfConfig


def import_backends(int8: bool) -> tuple[Any, Any]:
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
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    advanced = AdvancedQuantizationParameters(
        disable_bias_correction=settings.bias_correction == "none",
        overflow_fix={"first_layer": OverflowFix.FIRST_LAYER, "enable": OverflowFix.ENABLE,
                      "disable": OverflowFix.DISABLE}[resolved_overflow_fix(settings)],
    )  # fmt: skip
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


#: CPU flags of an int8 dot-product instruction (32-bit sums: no 16-bit saturation).
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def resolved_overflow_fix(settings: NncfConfig, flags: Sequence[str] | None = None) -> str:
    """``settings.overflow_fix`` with "auto" decided for the CPU whose ``flags`` are given
    (default: this one): "enable" (7-bit weights everywhere) without VNNI/AMX, where the
    16-bit pair sums of uint8 x int8 products saturate; else NNCF's "first_layer"."""
    if settings.overflow_fix != "auto":
        return settings.overflow_fix
    if flags is None:
        flags = cpu_model_and_flags()[1]
    return "first_layer" if set(flags) & set(INT8_DOT_PRODUCT_FLAGS) else "enable"


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
