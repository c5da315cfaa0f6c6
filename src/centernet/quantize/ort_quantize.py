"""ONNX Runtime's static QDQ quantization of a prepared float graph: activation ranges by
its calibrators (the method and its settings from ``CalibrationConfig``; histogram methods
read in strides that bound memory), a ranges file that later builds of the same export
reuse (checked before use), and ``quantize_static``."""

from __future__ import annotations

from pathlib import Path

import onnx

from centernet.errors import CenterNetError
from centernet.quantize.calibration import ImageCalibrationReader
from centernet.quantize.config import (
    DEFAULT_BINS,
    DEFAULT_PERCENTILE,
    ENTROPY_QUANTIZED_BINS,
    CalibrationConfig,
)
from centernet.quantize.float_layers import decode_nodes

HISTOGRAM_STRIDE = 8  # batches whose activations a histogram calibrator holds at once


def calibration_options(calib: CalibrationConfig) -> tuple[object, dict]:
    """ORT's calibration method and the calibrator settings that tune it (passed to
    ``create_calibrator`` directly: ``quantize_static`` would drop ``num_bins``)."""
    from onnxruntime.quantization import CalibrationMethod

    method = calib.method_for("onnxruntime")
    bins = calib.bins or DEFAULT_BINS
    if method == "percentile":
        percentile = calib.percentile or DEFAULT_PERCENTILE
        options = {"percentile": percentile, "num_bins": bins, "symmetric": True}
        return CalibrationMethod.Percentile, options
    if method == "entropy":
        options = {"num_bins": bins, "num_quantized_bins": ENTROPY_QUANTIZED_BINS}
        return CalibrationMethod.Entropy, options
    return CalibrationMethod.MinMax, {"moving_average": method == "minmax-ma"}


def calibrate(
    prepared_path: Path, reader: ImageCalibrationReader, calib: CalibrationConfig, cache: Path
) -> object:
    """Activation ranges of the prepared float graph on the calibration images, saved as
    an ORT calibration cache (what ``quantize_static`` reads instead of calibrating).

    Histogram methods read the images stride by stride and accumulate, so memory holds
    one stride's activations (100 images of a 768x768 DLA-34 at once need over 20 GB).
    """
    from onnxruntime.quantization import save_tensors_data
    from onnxruntime.quantization.calibrate import create_calibrator

    method, options = calibration_options(calib)
    calibrator = create_calibrator(
        prepared_path,
        augmented_model_path=str(cache.with_suffix(".augmented.onnx")),
        calibrate_method=method,
        extra_options=options,
    )
    reader.rewind()
    batches = len(reader)
    histogram = calib.method_for("onnxruntime") in ("percentile", "entropy")
    stride = _stride(batches, HISTOGRAM_STRIDE) if histogram else batches
    for start in range(0, batches, stride):
        reader.set_range(start, start + stride)
        calibrator.collect_data(reader)
    reader.rewind()
    save_tensors_data(calibrator.compute_data(), cache)
    cache.with_suffix(".augmented.onnx").unlink(missing_ok=True)
    return method


def _stride(batches: int, most: int) -> int:
    """The largest stride <= ``most`` that divides ``batches`` (ORT requires it)."""
    return max(s for s in range(1, min(most, batches) + 1) if batches % s == 0)


def check_ranges(path: Path, prepared: onnx.ModelProto, calib: CalibrationConfig) -> None:
    """Ranges saved for another model, or by another calibration method, would quantize
    this one with wrong scales: every tensor they name must be one of this graph's, every
    convolution input must be named, and the method must be this build's."""
    from onnxruntime.quantization import load_tensors_data

    try:
        saved = load_tensors_data(str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CenterNetError(f"calibration ranges {path} cannot be read: {exc}") from None
    named = set(saved.data)
    tensors = {out for node in prepared.graph.node for out in node.output}
    tensors |= {value.name for value in prepared.graph.input}
    inputs = {node.input[0] for node in prepared.graph.node if node.op_type == "Conv"}
    if not named <= tensors or not inputs <= named:
        raise CenterNetError(
            f"calibration ranges {path} are not this model's (another export, or another "
            "precision's graph); delete the file to calibrate again"
        )
    method, _ = calibration_options(calib)
    if saved.calibration_method != method:
        raise CenterNetError(
            f"calibration ranges {path} were made with {saved.calibration_method.name}, not "
            f"{calib.method_for('onnxruntime')}; delete the file to calibrate again"
        )


def prepare_for_quantization(float_path: Path, out_path: Path) -> onnx.ModelProto:
    """ORT's pre-processing (shape inference, graph clean-up) of the float model; the QDQ
    graph keeps its node and weight names, so it is the float reference for ``keep_float``."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(float_path), str(out_path), skip_symbolic_shape=True)
    return onnx.load(str(out_path))


def quantize_qdq(
    prepared_path: Path,
    out_path: Path,
    reader: ImageCalibrationReader,
    calib: CalibrationConfig,
    exclude: list[str],
    ranges_file: Path | None = None,
) -> bool:
    """Static QDQ quantization with ONNX Runtime's tools, of a prepared float graph; the
    decode (Sigmoid and after) is always excluded. With ``ranges_file``: its activation
    ranges are used if it exists (True is returned), else the calibration writes it."""
    import shutil

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    prepared = onnx.load(str(prepared_path))
    decode = decode_nodes(prepared)
    cache = out_path.with_suffix(".calibration.json")
    reused = ranges_file is not None and ranges_file.is_file()
    if reused:
        check_ranges(ranges_file, prepared, calib)
        shutil.copyfile(ranges_file, cache)
        method, _ = calibration_options(calib)
    else:
        method = calibrate(prepared_path, reader, calib, cache)
        if ranges_file is not None:
            ranges_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cache, ranges_file)
    quantize_static(
        str(prepared_path),
        str(out_path),
        None,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
        nodes_to_exclude=[*exclude, *decode],
        calibration_cache_path=str(cache),
    )
    return reused
