"""The int8 / int8-mixed QDQ graph laid out for ONNX Runtime: ``quantize_static`` (per-channel
int8 weights, uint8 activations calibrated on real images through the inference
pre-processing, each tensor its own range; ``ort_quantize.py``), which ORT's optimizer
fuses into QLinearConv, QLinearAdd and QLinearConcat. The float layers by design for this
layout (``float_layers.float_by_design``: decode, head outputs, the stem, ConvTranspose,
which has no int8 kernel in ORT's CPU provider) get no Quantize/Dequantize. int8-mixed
then makes the layers the search picks float in the same graph (``mixed.py``); the older
rule (heads float plus the worst per-layer SQNR losses) remains as ``method="sqnr"``.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from centernet.engines import default_onnx_engine
from centernet.modelfile.spec import INPUT_NAME
from centernet.progress import Progress
from centernet.quantize.calibration import ImageCalibrationReader
from centernet.quantize.config import BuildConfig, BuildTarget
from centernet.quantize.float_layers import (
    KeptLayer,
    float_layers_by_design,
    head_nodes,
    int8_conv_names,
    keep_float,
)
from centernet.quantize.kernels import float_where_the_engine_runs_float
from centernet.quantize.mixed import search_qdq
from centernet.quantize.ort_quantize import prepare_for_quantization, quantize_qdq
from centernet.quantize.result import BuildResult
from centernet.quantize.sqnr import choose_float_layers_by_sqnr
from centernet.types import ModelSpec


def build_int8_for_onnxruntime(
    float_path: Path,
    workdir: Path,
    spec: ModelSpec,
    paths: list[Path],
    batch: int,
    config: BuildConfig,
    result: BuildResult,
    progress: Progress | None,
) -> onnx.ModelProto:
    """int8 or int8-mixed for ONNX Runtime: calibrate and quantize once; int8-mixed then
    makes the layers the search picks float in the same QDQ graph."""
    calib = config.calibration
    assert calib is not None
    prepared_path = workdir / "prepared.onnx"
    prepared = prepare_for_quantization(float_path, prepared_path)
    reference = prepared  # what the search compares the boxes with: the float model
    result.kept += float_layers_by_design(
        prepared, "onnxruntime", config.head_outputs_float, config.keep_float_layers
    )
    if config.finetune is not None:
        from centernet.quantize.finetune import finetune

        tuned_path = workdir / "finetuned.onnx"
        floats = [k.node for k in result.kept] + list(config.keep_float_layers)
        result.finetune = finetune(
            onnx.load(str(float_path)), spec, paths, floats, tuned_path, config.finetune,
            progress, calib,
        )  # fmt: skip
        prepared_path = workdir / "prepared_finetuned.onnx"
        prepared = prepare_for_quantization(tuned_path, prepared_path)
    exclude = [k.node for k in result.kept]
    mixed = config.precision == "int8-mixed"
    mixed_method = config.search_method(BuildTarget("onnxruntime")) if mixed else None
    if mixed_method == "sqnr":
        heads_all = [h for h in head_nodes(prepared) if h not in exclude]
        result.kept += [KeptLayer(h, "head (sqnr rule: heads float)") for h in heads_all]
        exclude += heads_all
        extra = choose_float_layers_by_sqnr(
            prepared_path, workdir, spec, paths, batch, exclude, config, progress
        )
        result.kept += extra
        exclude += [k.node for k in extra]
    qdq_path = workdir / "qdq.onnx"
    stage = f"{config.precision}: calibration ({calib.method_for('onnxruntime')})"
    reader = ImageCalibrationReader(paths, spec, batch, INPUT_NAME, progress, stage)
    ranges = Path(calib.ranges_file) if calib.ranges_file and config.finetune is None else None
    result.ranges_reused = quantize_qdq(prepared_path, qdq_path, reader, calib, exclude, ranges)
    result.skipped_images = sorted(set(reader.skipped))
    built = onnx.load(str(qdq_path))
    # layers kept float after quantization compute from float inputs too (keep_float)
    asked = [name for name in config.keep_float_layers if name in int8_conv_names(built)]
    result.kept += [KeptLayer(name, "asked for (--keep-float)") for name in asked]
    if asked:
        built = keep_float(built, prepared, asked)
    built, fallbacks = float_where_the_engine_runs_float(built, prepared, "onnxruntime", workdir)
    result.kept += fallbacks
    if mixed_method == "task":
        built = search_qdq(
            built, prepared, reference, paths, spec, batch, config, result, progress,
            prepared_path, qdq_path, default_onnx_engine(spec.arch),
        )  # fmt: skip
        # a layer made float reads its input before quantization: an int8 convolution
        # that fed it alone loses the quantizer after it, and ONNX Runtime then runs it
        # in float; such a one is made float and named too, not left as Q/DQ work
        reason = "ONNX Runtime runs it in float: its output feeds a layer kept float"
        built, fallbacks = float_where_the_engine_runs_float(
            built, prepared, "onnxruntime", workdir, reason
        )
        result.kept += fallbacks
    return built
