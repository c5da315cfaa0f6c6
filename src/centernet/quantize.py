"""Precision builds of an exported model: fp32, fp16, int8 (static QDQ) and int8-mixed.

- fp16: weights and activations in float16, the graph's inputs and outputs kept float32.
- int8: ONNX Runtime ``quantize_static`` in QDQ format, per-channel int8 weights, uint8
  activations calibrated on real images through the inference pre-processing
  (minmax / percentile / entropy). The in-graph decode (the Sigmoid and everything after
  it: the heatmap max-pool, and top-K when present) stays in float so that ``hm`` and
  ``hm_max`` remain exactly comparable for peak finding; so do the 3-channel stem and
  the ConvTranspose up-sampling, where int8 is slower than float on the CPU.
- int8-mixed: int8, except the three heads and the convolutions that hurt most, kept in
  float. "Hurt most" is measured, not guessed: on calibration images, the signal-to-
  quantization-noise ratio (SQNR, dB) of every activation of the int8 model against the
  float model; a convolution's cost is how much SQNR its output loses relative to its
  input. The worst ones (above ``mixed_min_drop_db``, at most ``mixed_max_layers``) stay
  in float.

A QDQ model is portable: ONNX Runtime, OpenVINO and TensorRT all read it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from centernet.calibration import ImageCalibrationReader, calibration_paths
from centernet.errors import CenterNetError
from centernet.modelfile import INPUT_NAME, load_centernet_onnx, write_spec
from centernet.progress import Progress
from centernet.types import ModelSpec

PRECISIONS = ("fp32", "fp16", "int8", "int8-mixed")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
HEADS = ("hm", "wh", "reg")


@dataclass(frozen=True)
class CalibrationConfig:
    images: str
    count: int = 100
    method: str = "minmax"


@dataclass(frozen=True)
class BuildConfig:
    precision: str = "fp32"
    calibration: CalibrationConfig | None = None
    batch: int | None = None  # a static batch; None keeps the input model's
    dynamic_batch: bool = False
    mixed_max_layers: int = 6  # int8-mixed: most extra convolutions kept in float
    mixed_min_drop_db: float = 1.0  # int8-mixed: keep a conv whose SQNR drop exceeds this
    mixed_probe_images: int = 8  # int8-mixed: images for the sensitivity measurement


@dataclass
class KeptLayer:
    node: str
    reason: str


@dataclass
class BuildResult:
    path: Path
    spec: ModelSpec
    seconds: float
    size_bytes: int
    nodes_quantized: int = 0
    nodes_total: int = 0
    kept: list[KeptLayer] = field(default_factory=list)
    skipped_images: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- graph helpers


def set_batch(model: onnx.ModelProto, batch: int | str) -> None:
    """Fix the batch dimension of every graph input and output to ``batch`` (or free it).

    The exported network has no reshapes, so its batch lives only in the I/O shapes;
    stale intermediate shapes are dropped and inferred again by the runtime.
    """
    for value in [*model.graph.input, *model.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        if batch == "dynamic":
            dim.ClearField("dim_value")
            dim.dim_param = "batch"
        else:
            dim.ClearField("dim_param")
            dim.dim_value = int(batch)
    del model.graph.value_info[:]


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the head convolutions (``/network/hm/...``; ``/network/hm.1/...`` for the
    per-stack heads of Hourglass) in our exports."""
    prefixes = tuple(f"/network/{h}{sep}" for h in HEADS for sep in ("/", "."))
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.name.startswith(prefixes)]


def decode_nodes(model: onnx.ModelProto) -> list[str]:
    """The heatmap Sigmoid and every node downstream of it: the decode, kept in float."""
    tainted = set()
    names = []
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == "Sigmoid" or any(i in tainted for i in node.input):
            tainted.update(node.output)
            names.append(node.name)
    return names


def float_by_design(model: onnx.ModelProto) -> list[KeptLayer]:
    """Convolutions every int8 build keeps in float, because int8 is slower there.

    The stem (3 input channels: too short a dot product for int8 kernels; measured 40 ms
    int8 against ~10 ms float for DLA-34 at 512x512 on 2 AVX2 cores) and the depthwise
    ConvTranspose up-sampling (ONNX Runtime's CPU provider has no int8 kernel for it, so
    quantizing only adds QuantizeLinear/DequantizeLinear around a float op).
    """
    weights = {init.name: init for init in model.graph.initializer}
    kept = []
    for node in conv_nodes(model):
        if node.op_type == "ConvTranspose":
            kept.append(
                KeptLayer(node.name, "ConvTranspose: no int8 CPU kernel, QDQ only adds work")
            )
        elif node.input[1] in weights and weights[node.input[1]].dims[1] <= 4:
            kept.append(KeptLayer(node.name, "stem with <= 4 input channels: float is faster"))
    return kept


def conv_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]


def int8_conv_names(model: onnx.ModelProto) -> set[str]:
    """Convolutions of a QDQ graph whose weights arrive through DequantizeLinear."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in conv_nodes(model) if n.input[1] in dequantized}


# ---------------------------------------------------------------- fp16


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 everywhere except DeformConv, whose sampling positions need float32: in fp16 a
    position beyond 64 cells has 1/16-cell resolution (measured on resdcn_18: hm SQNR 37 dB
    against fp32 with DeformConv in fp16)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    return convert_float_to_float16(
        model,
        keep_io_types=True,
        disable_shape_infer=False,
        op_block_list=[*DEFAULT_OP_BLOCK_LIST, "DeformConv"],
    )


# ---------------------------------------------------------------- int8


def _calibrate_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[name]


def quantize_qdq(
    float_path: Path,
    out_path: Path,
    reader: ImageCalibrationReader,
    method: str,
    exclude: list[str],
) -> None:
    """Static QDQ quantization with ONNX Runtime's tools (pre-processed graph)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out_path.with_suffix(".prep.onnx")
    quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    decode = decode_nodes(onnx.load(str(prepared)))
    reader.rewind()
    quantize_static(
        str(prepared),
        str(out_path),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=_calibrate_method(method),
        nodes_to_exclude=[*exclude, *decode],
        extra_options={"CalibMovingAverage": method == "minmax"},
    )
    prepared.unlink(missing_ok=True)


def activation_sqnr(
    float_path: Path, qdq_path: Path, reader: ImageCalibrationReader
) -> dict[str, float]:
    """SQNR (dB) of each activation of the QDQ model against the float model."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with tempfile.TemporaryDirectory() as tmp:
        aug_float, aug_qdq = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        modify_model_output_intermediate_tensors(str(float_path), str(aug_float))
        modify_model_output_intermediate_tensors(str(qdq_path), str(aug_qdq))
        reader.rewind()
        float_acts = collect_activations(str(aug_float), reader)
        reader.rewind()
        qdq_acts = collect_activations(str(aug_qdq), reader)
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    return {name: float(err["xmodel_err"]) for name, err in errors.items() if "xmodel_err" in err}


def rank_sensitive_convs(
    model: onnx.ModelProto, sqnr: dict[str, float], skip: set[str]
) -> list[tuple[str, float]]:
    """Convolutions by how much SQNR their output loses against their input, worst first."""
    ranked = []
    for node in conv_nodes(model):
        if node.name in skip or node.output[0] not in sqnr:
            continue
        out_db = sqnr[node.output[0]]
        in_db = sqnr.get(node.input[0], float("inf"))  # the graph input is exact
        drop = (min(in_db, 60.0) - out_db) if np.isfinite(out_db) else 0.0
        ranked.append((node.name, float(drop)))
    return sorted(ranked, key=lambda item: -item[1])


# ---------------------------------------------------------------- build


def build(
    input_path: str | Path,
    output_path: str | Path,
    config: BuildConfig,
    progress: Progress | None = None,
) -> BuildResult:
    """Write ``output_path``: the model of ``input_path`` at ``config.precision``.

    Every input (model, precision, calibration folder) is checked before anything is
    written. ``progress`` hears each stage of an int8 build, image by image.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    if config.precision not in PRECISIONS:
        raise CenterNetError(
            f"unknown precision {config.precision!r}; choose from {', '.join(PRECISIONS)}"
        )
    if output_path.resolve() == input_path.resolve():
        raise CenterNetError(
            f"refusing to overwrite the input model {input_path}; choose another -o"
        )
    model, spec = load_centernet_onnx(input_path)
    if spec.precision != "fp32":
        raise CenterNetError(
            f"{input_path} is already a {spec.precision} build; build from the fp32 export"
        )
    if config.dynamic_batch or config.batch:
        spec.batch = "dynamic" if config.dynamic_batch else int(config.batch)  # type: ignore[arg-type]
        set_batch(model, spec.batch)
    int8 = config.precision.startswith("int8")
    calib = config.calibration
    reader_batch = 1 if spec.dynamic_batch else int(spec.batch)
    paths: list[Path] = []
    if int8:
        if calib is None:
            raise CenterNetError(
                f"{config.precision} needs calibration images (--calib-images DIR)"
            )
        if calib.method not in CALIBRATION_METHODS:
            raise CenterNetError(
                f"unknown calibration method {calib.method!r}; "
                f"choose from {', '.join(CALIBRATION_METHODS)}"
            )
        paths = calibration_paths(calib.images, calib.count, reader_batch)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    total = len(conv_nodes(model))
    result_kept: list[KeptLayer] = []
    skipped: list[str] = []
    quantized = 0
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        onnx.save(model, str(float_path))
        if config.precision == "fp32":
            built = model
        elif config.precision == "fp16":
            if progress:
                progress("fp16: converting weights and activations", 0, 1)
            built = to_fp16(model)
            if progress:
                progress("fp16: converting weights and activations", 1, 1)
        else:
            assert calib is not None
            reader = ImageCalibrationReader(
                paths, spec, reader_batch, INPUT_NAME, progress, f"{config.precision}: calibration"
            )
            result_kept += float_by_design(model)
            exclude = [k.node for k in result_kept]
            if config.precision == "int8-mixed":
                heads = head_nodes(model)
                exclude += heads
                result_kept += [KeptLayer(h, "head (always float in int8-mixed)") for h in heads]
                extra = choose_float_layers(
                    float_path,
                    Path(tmp),
                    spec,
                    paths,
                    reader_batch,
                    calib,
                    exclude,
                    config,
                    progress,
                )
                exclude += [k.node for k in extra]
                result_kept += extra
            qdq_path = Path(tmp) / "qdq.onnx"
            quantize_qdq(float_path, qdq_path, reader, calib.method, exclude)
            skipped = sorted(set(reader.skipped))
            built = onnx.load(str(qdq_path))
            spec.extra["calibration"] = {
                "images": Path(calib.images).name,
                "count": len(paths),
                "method": calib.method,
            }
            spec.extra["kept_float"] = [asdict(k) for k in result_kept]
            quantized = len(int8_conv_names(built))
        spec.precision = config.precision
        write_spec(built, spec)
        onnx.save(built, str(output_path))
    return BuildResult(
        path=output_path,
        spec=spec,
        seconds=time.perf_counter() - started,
        size_bytes=output_path.stat().st_size,
        nodes_quantized=quantized,
        nodes_total=total,
        kept=result_kept,
        skipped_images=skipped,
    )


def choose_float_layers(
    float_path: Path,
    workdir: Path,
    spec: ModelSpec,
    paths: list[Path],
    batch: int,
    calib: CalibrationConfig,
    already: list[str],
    config: BuildConfig,
    progress: Progress | None = None,
) -> list[KeptLayer]:
    """Measure each convolution's SQNR loss in a trial int8 build; the worst stay float."""
    probe = paths[: max(batch, config.mixed_probe_images - config.mixed_probe_images % batch)]
    trial = workdir / "trial.onnx"
    quantize_qdq(
        float_path,
        trial,
        ImageCalibrationReader(
            paths, spec, batch, INPUT_NAME, progress, "int8-mixed: trial int8 calibration"
        ),
        calib.method,
        already,
    )
    sqnr = activation_sqnr(
        float_path,
        trial,
        ImageCalibrationReader(
            probe, spec, batch, INPUT_NAME, progress, "int8-mixed: per-layer SQNR (float, int8)"
        ),
    )
    ranked = rank_sensitive_convs(onnx.load(str(float_path)), sqnr, set(already))
    chosen = [(n, d) for n, d in ranked if d >= config.mixed_min_drop_db][: config.mixed_max_layers]
    return [KeptLayer(n, f"int8 costs {d:.1f} dB of SQNR at its output") for n, d in chosen]


__all__ = [
    "BuildConfig",
    "BuildResult",
    "CALIBRATION_METHODS",
    "CalibrationConfig",
    "PRECISIONS",
    "build",
]
