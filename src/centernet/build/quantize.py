"""Precision builds of an exported model: fp32, fp16, int8 (static QDQ) and int8-mixed.

- fp16: weights and activations in float16, the graph's inputs and outputs kept float32.
- int8: ONNX Runtime ``quantize_static`` in QDQ format, per-channel int8 weights, uint8
  activations calibrated on real images through the inference pre-processing
  (minmax, moving-average minmax, percentile, entropy). The last 1x1 convolution of each
  head, its output (the hm/wh/reg logits: 8 bits there move peaks and box edges) and
  everything after it (sigmoid, max-pool, top-K) stay float, with no Quantize/Dequantize
  on the logits; the heads' 3x3 convolutions are int8. So do the 3-channel stem and the
  ConvTranspose up-sampling stay float, where int8 is slower than float on the CPU.
- int8-mixed: int8, plus the fewest extra float convolutions that bring the build within
  ``max_drop`` of the float model, judged by the detections (``sensitivity.py``): each
  candidate is made float alone in the QDQ graph (no re-calibration) and scored by the
  COCO AP of its boxes against the float model's (or real annotations). The older rule
  (heads float plus the worst per-layer SQNR losses) remains as ``mixed_search="sqnr"``.

A QDQ model is portable: ONNX Runtime, OpenVINO and TensorRT all read it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from centernet.build.calibration import ImageCalibrationReader, calibration_paths
from centernet.build.finetune import FinetuneConfig, FinetuneResult
from centernet.build.float_layers import (
    KeptLayer,
    conv_nodes,
    decode_nodes,
    float_by_design,
    head_nodes,
    head_output_convs,
    int8_conv_names,
    keep_float,
)
from centernet.build.sensitivity import (
    LayerGain,
    SearchConfig,
    SearchResult,
    describe_search,
    search_float_layers,
    search_probes,
)
from centernet.errors import CenterNetError
from centernet.modelfile.spec import INPUT_NAME, load_centernet_onnx, write_spec
from centernet.progress import Progress
from centernet.types import ModelSpec

PRECISIONS = ("fp32", "fp16", "int8", "int8-mixed")
#: minmax: the extremes over all images; minmax-ma: their moving average over batches
#: (ORT's CalibMovingAverage); percentile: the given percentile of |x|; entropy: the
#: KL-divergence-minimising threshold over a histogram of ``bins`` bins.
CALIBRATION_METHODS = ("minmax", "minmax-ma", "percentile", "entropy")
#: int8-mixed: auto (task for a QDQ .onnx, nncf for an OpenVINO IR), task (our search by the
#: boxes, on the QDQ graph), sqnr (the older rule), nncf (NNCF's accuracy control, IR only)
MIXED_SEARCHES = ("auto", "task", "sqnr", "nncf")


@dataclass(frozen=True)
class CalibrationConfig:
    images: str
    count: int = 100
    method: str = "minmax"  # measured best (BENCHMARKS.md, issue 15)
    percentile: float = 99.999  # percentile method
    bins: int = 2048  # percentile and entropy histograms
    annotations: str | None = None  # COCO instances.json of these images (--calib-ann)
    # activation ranges (an ORT calibration cache): reused if the file exists, written
    # there otherwise, so that builds of the same export on the same images (int8, then
    # int8-mixed) calibrate once
    ranges_file: str | None = None

    def describe(self) -> dict:
        """What the ModelSpec records about it."""
        described: dict = {"images": Path(self.images).name, "method": self.method}
        if self.method == "percentile":
            described["percentile"] = self.percentile
        if self.method in ("percentile", "entropy"):
            described["bins"] = self.bins
        return described


@dataclass(frozen=True)
class BuildConfig:
    precision: str = "fp32"
    calibration: CalibrationConfig | None = None
    batch: int | None = None  # a static batch; None keeps the input model's
    dynamic_batch: bool = False
    mixed_search: str = "auto"  # int8-mixed: one of MIXED_SEARCHES
    max_drop: float = 0.002  # task search: allowed AP drop against the float model
    mixed_max_layers: int = 6  # int8-mixed: most extra convolutions kept in float
    mixed_max_candidates: int | None = None  # task search: try only the N worst by SQNR
    mixed_min_drop_db: float = 1.0  # sqnr search: keep a conv whose SQNR drop exceeds this
    mixed_probe_images: int = 32  # images the layer search picks on (sqnr: first 8)
    mixed_check_images: int = 64  # further calibration images the search's build is judged on
    search_engine: str = "onnxruntime"  # what the task search runs its trials on
    # task search: a drop within this many of its bootstrap standard deviations on the check
    # images cannot be told from none, and is no reason to keep layers float
    mixed_noise_sigmas: float = 2.0
    keep_float_layers: tuple[str, ...] = ()  # convolutions the user keeps float (by name)
    # False quantizes the heads' last convolutions too (the logits in 8 bits): for
    # comparison with builds made before this rule, not for use
    head_outputs_float: bool = True
    target: str = "onnx"  # "openvino": an OpenVINO IR (.xml) quantized by NNCF
    # int8 / int8-mixed: label-free quantization-aware fine-tuning first (finetune.py)
    finetune: FinetuneConfig | None = None
    bias_correction: str = "fast"  # openvino target: NNCF's fast / full / none




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
    search: SearchResult | None = None  # int8-mixed task search: what it measured
    finetune: FinetuneResult | None = None  # --qat-steps: what the fine-tuning did
    ranges_reused: bool = False  # the activation ranges came from calibration.ranges_file


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


def _calibration_options(calib: CalibrationConfig) -> tuple[object, dict]:
    """ORT's calibration method and the calibrator settings that tune it (passed to
    ``create_calibrator`` directly: ``quantize_static`` would drop ``num_bins``)."""
    from onnxruntime.quantization import CalibrationMethod

    if calib.method == "percentile":
        options = {"percentile": calib.percentile, "num_bins": calib.bins, "symmetric": True}
        return CalibrationMethod.Percentile, options
    if calib.method == "entropy":
        return CalibrationMethod.Entropy, {"num_bins": calib.bins, "num_quantized_bins": 128}
    return CalibrationMethod.MinMax, {"moving_average": calib.method == "minmax-ma"}


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

    method, options = _calibration_options(calib)
    calibrator = create_calibrator(
        prepared_path,
        augmented_model_path=str(cache.with_suffix(".augmented.onnx")),
        calibrate_method=method,
        extra_options=options,
    )
    reader.rewind()
    batches = len(reader)
    stride = (
        _stride(batches, HISTOGRAM_STRIDE) if calib.method in ("percentile", "entropy") else batches
    )
    for start in range(0, batches, stride):
        reader.set_range(start, start + stride)
        calibrator.collect_data(reader)
    reader.rewind()
    save_tensors_data(calibrator.compute_data(), cache)
    cache.with_suffix(".augmented.onnx").unlink(missing_ok=True)
    return method


HISTOGRAM_STRIDE = 8  # batches whose activations a histogram calibrator holds at once


def _stride(batches: int, most: int) -> int:
    """The largest stride <= ``most`` that divides ``batches`` (ORT requires it)."""
    return max(s for s in range(1, min(most, batches) + 1) if batches % s == 0)


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
        _check_ranges(ranges_file, prepared, calib)
        shutil.copyfile(ranges_file, cache)
        method, _ = _calibration_options(calib)
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


def _check_ranges(path: Path, prepared: onnx.ModelProto, calib: CalibrationConfig) -> None:
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
    method, _ = _calibration_options(calib)
    if saved.calibration_method != method:
        raise CenterNetError(
            f"calibration ranges {path} were made with {saved.calibration_method.name}, not "
            f"{calib.method}; delete the file to calibrate again"
        )


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


def build_qdq(
    input_path: str | Path,
    output_path: str | Path,
    config: BuildConfig,
    progress: Progress | None = None,
    search: SearchConfig | None = None,
) -> BuildResult:
    """Write ``output_path``: the model of ``input_path`` at ``config.precision``.

    Every input (model, precision, calibration folder) is checked before anything is
    written. ``progress`` hears each stage of an int8 build, image by image. ``search``
    tunes the int8-mixed layer search (default: from ``config``).
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    if config.precision not in PRECISIONS:
        raise CenterNetError(
            f"unknown precision {config.precision!r}; choose from {', '.join(PRECISIONS)}"
        )
    _check_search(config)
    if config.mixed_search == "nncf" and config.precision == "int8-mixed":
        raise CenterNetError(
            'NNCF\'s accuracy control makes OpenVINO IRs: use `target="openvino"` (an .xml '
            'output), or `mixed_search="task"` for a QDQ .onnx'
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
        paths = _check_calibration(config, calib, reader_batch)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    result = BuildResult(output_path, spec, 0.0, 0, nodes_total=len(conv_nodes(model)))
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
            search = search or search_config(config)
            built = _build_int8(
                float_path, Path(tmp), spec, paths, reader_batch, config, search, result, progress
            )
            spec.extra["calibration"] = {**calib.describe(), "count": len(paths)}
            if result.ranges_reused:
                spec.extra["calibration"]["ranges"] = f"reused {Path(calib.ranges_file).name}"
            spec.extra["kept_float"] = [asdict(k) for k in result.kept]
            if result.finetune is not None and config.finetune is not None:
                spec.extra["finetune"] = {
                    **asdict(config.finetune),
                    **{k: round(v, 5) if isinstance(v, float) else v
                       for k, v in asdict(result.finetune).items()},
                }  # fmt: skip
            if result.search is not None:
                spec.extra["float_layer_search"] = describe_search(result.search, search)
            result.nodes_quantized = len(int8_conv_names(built))
        spec.precision = config.precision
        write_spec(built, spec)
        onnx.save(built, str(output_path))
    result.seconds = time.perf_counter() - started
    result.size_bytes = output_path.stat().st_size
    return result


def search_config(config: BuildConfig) -> SearchConfig:
    """The int8-mixed search settings a build config asks for."""
    return SearchConfig(
        max_drop=config.max_drop,
        max_layers=config.mixed_max_layers,
        probe_images=config.mixed_probe_images,
        check_images=config.mixed_check_images,
        annotations=config.calibration.annotations if config.calibration else None,
        engine=config.search_engine,
        noise_sigmas=config.mixed_noise_sigmas,
        max_candidates=config.mixed_max_candidates,
    )




def _check_search(config: BuildConfig) -> None:
    if config.mixed_search not in MIXED_SEARCHES:
        raise CenterNetError(
            f"unknown int8-mixed search {config.mixed_search!r}; "
            f"choose from {', '.join(MIXED_SEARCHES)}"
        )




def _check_calibration(
    config: BuildConfig, calib: CalibrationConfig | None, batch: int
) -> list[Path]:
    if calib is None:
        raise CenterNetError(f"{config.precision} needs calibration images (`calib_images`)")
    if calib.method not in CALIBRATION_METHODS:
        raise CenterNetError(
            f"unknown calibration method {calib.method!r}; "
            f"choose from {', '.join(CALIBRATION_METHODS)}"
        )
    if calib.annotations is not None and not Path(calib.annotations).is_file():
        raise CenterNetError(f"calibration annotations {calib.annotations} do not exist")
    return calibration_paths(calib.images, calib.count, batch)


def _build_int8(
    float_path: Path,
    workdir: Path,
    spec: ModelSpec,
    paths: list[Path],
    batch: int,
    config: BuildConfig,
    search: SearchConfig,
    result: BuildResult,
    progress: Progress | None,
) -> onnx.ModelProto:
    """int8 or int8-mixed: calibrate and quantize once; int8-mixed then makes the layers
    the search picks float in the same QDQ graph."""
    calib = config.calibration
    assert calib is not None
    prepared_path = workdir / "prepared.onnx"
    prepared = prepare_for_quantization(float_path, prepared_path)
    reference = prepared  # what the search compares the boxes with: the float model
    heads = head_output_convs(prepared) if config.head_outputs_float else []
    result.kept += float_by_design(prepared)
    result.kept += [KeptLayer(h, "head output (logits): no Q/DQ on hm/wh/reg") for h in heads]
    known = {node.name for node in conv_nodes(prepared)}
    unknown = [name for name in config.keep_float_layers if name not in known]
    if unknown:
        raise CenterNetError(
            f"`keep_float_layers` names no convolution of this model: {unknown[0]}"
        )
    if config.finetune is not None and config.finetune.steps > 0:
        from centernet.build.finetune import finetune

        tuned_path = workdir / "finetuned.onnx"
        floats = [k.node for k in result.kept] + list(config.keep_float_layers)
        result.finetune = finetune(
            onnx.load(str(float_path)), spec, paths, floats, tuned_path, config.finetune, progress
        )
        prepared_path = workdir / "prepared_finetuned.onnx"
        prepared = prepare_for_quantization(tuned_path, prepared_path)
    exclude = [k.node for k in result.kept]
    stage = f"{config.precision}: calibration ({calib.method})"
    reader = ImageCalibrationReader(paths, spec, batch, INPUT_NAME, progress, stage)
    if config.precision == "int8-mixed" and config.mixed_search == "sqnr":
        heads_all = [h for h in head_nodes(prepared) if h not in exclude]
        result.kept += [KeptLayer(h, "head (sqnr rule: heads float)") for h in heads_all]
        exclude += heads_all
        extra = choose_float_layers_by_sqnr(
            prepared_path, workdir, spec, paths, batch, calib, exclude, config, progress
        )
        result.kept += extra
        exclude += [k.node for k in extra]
    qdq_path = workdir / "qdq.onnx"
    tuned = config.finetune is not None and config.finetune.steps > 0
    ranges = Path(calib.ranges_file) if calib.ranges_file and not tuned else None
    result.ranges_reused = quantize_qdq(prepared_path, qdq_path, reader, calib, exclude, ranges)
    result.skipped_images = sorted(set(reader.skipped))
    built = onnx.load(str(qdq_path))
    # layers kept float after quantization compute from float inputs too (keep_float)
    asked = [name for name in config.keep_float_layers if name in int8_conv_names(built)]
    result.kept += [KeptLayer(name, "asked for (--keep-float)") for name in asked]
    if asked:
        built = keep_float(built, prepared, asked)
    if config.precision == "int8-mixed" and config.mixed_search in ("auto", "task"):
        probe, check = search_probes(paths, spec, search)
        candidates = sorted(int8_conv_names(built), key=_graph_order(built))
        if search.max_candidates is not None and len(candidates) > search.max_candidates:
            candidates = _worst_by_sqnr(
                prepared_path, qdq_path, paths[: search.probe_images], spec, batch,
                candidates, search.max_candidates, progress,
            )  # fmt: skip
        found = search_float_layers(
            probe, prepared, built, candidates, keep_float, progress, check, reference
        )
        result.search = found
        result.kept += [KeptLayer(layer.node, search_reason(layer)) for layer in found.chosen]
        built = keep_float(built, prepared, [layer.node for layer in found.chosen])
    return built


def _worst_by_sqnr(
    prepared_path: Path,
    qdq_path: Path,
    paths: list[Path],
    spec: ModelSpec,
    batch: int,
    candidates: list[str],
    keep: int,
    progress: Progress | None,
) -> list[str]:
    """The ``keep`` candidates whose output loses the most SQNR in the int8 build against
    their input (``activation_sqnr``: one pass of each graph), in graph order."""
    stage = "int8-mixed: per-layer SQNR (choosing the candidates)"
    reader = ImageCalibrationReader(paths, spec, batch, INPUT_NAME, progress, stage)
    sqnr = activation_sqnr(prepared_path, qdq_path, reader)
    allowed = set(candidates)
    ranked = rank_sensitive_convs(onnx.load(str(prepared_path)), sqnr, set())
    worst = [name for name, _ in ranked if name in allowed][:keep]
    return [name for name in candidates if name in worst]


def search_reason(layer: LayerGain) -> str:
    """Why the search keeps ``layer`` float, in words (the build summary, the ModelSpec)."""
    return (
        f"search: alone in float it raises the score by {layer.gain * 100:+.2f} AP points "
        f"and removes {layer.error_cut:.0%} of int8's output error"
    )


def _graph_order(model: onnx.ModelProto):
    order = {node.name: index for index, node in enumerate(model.graph.node)}
    return lambda name: order.get(name, len(order))


def choose_float_layers_by_sqnr(
    prepared_path: Path,
    workdir: Path,
    spec: ModelSpec,
    paths: list[Path],
    batch: int,
    calib: CalibrationConfig,
    already: list[str],
    config: BuildConfig,
    progress: Progress | None = None,
) -> list[KeptLayer]:
    """The older int8-mixed rule: each convolution's SQNR loss in a trial int8 build; the
    worst (above ``mixed_min_drop_db``, at most ``mixed_max_layers``) stay float."""
    probe_count = min(8, config.mixed_probe_images)
    probe = paths[: max(batch, probe_count - probe_count % batch)]
    trial = workdir / "trial.onnx"
    quantize_qdq(
        prepared_path,
        trial,
        ImageCalibrationReader(
            paths, spec, batch, INPUT_NAME, progress, "int8-mixed: trial int8 calibration"
        ),
        calib,
        already,
    )
    sqnr = activation_sqnr(
        prepared_path,
        trial,
        ImageCalibrationReader(
            probe, spec, batch, INPUT_NAME, progress, "int8-mixed: per-layer SQNR (float, int8)"
        ),
    )
    ranked = rank_sensitive_convs(onnx.load(str(prepared_path)), sqnr, set(already))
    chosen = [(n, d) for n, d in ranked if d >= config.mixed_min_drop_db][: config.mixed_max_layers]
    return [KeptLayer(n, f"int8 costs {d:.1f} dB of SQNR at its output") for n, d in chosen]


__all__ = [
    "BuildConfig",
    "BuildResult",
    "CALIBRATION_METHODS",
    "CalibrationConfig",
    "MIXED_SEARCHES",
    "PRECISIONS",
    "build_qdq",
]
