"""The QDQ back end: an fp32 export rebuilt at fp32, fp16, int8 (static QDQ) or
int8-mixed, as an ``.onnx`` that ONNX Runtime, OpenVINO and TensorRT all read.

- fp16: weights and activations in float16, the graph's inputs and outputs kept float32.
- int8: ONNX Runtime ``quantize_static`` in QDQ format (``ort_quantize.py``),
  per-channel int8 weights, uint8 activations calibrated on real images through the
  inference pre-processing. The float layers by design (``float_layers.py``: decode,
  head outputs, stem, ConvTranspose) get no Quantize/Dequantize.
- int8-mixed: int8, plus the fewest extra float convolutions that bring the build within
  ``search.max_drop`` of the float model, judged by the detections (``search.py``): each
  candidate is made float alone in the QDQ graph (no re-calibration) and scored by the
  COCO AP of its boxes against the float model's (or real annotations). The older rule
  (heads float plus the worst per-layer SQNR losses) remains as ``method="sqnr"``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import onnx

from centernet.errors import CenterNetError
from centernet.modelfile.spec import INPUT_NAME, load_centernet_onnx, write_spec
from centernet.progress import Progress
from centernet.quantize.calibration import ImageCalibrationReader, calibration_paths
from centernet.quantize.config import BuildConfig
from centernet.quantize.float_layers import (
    KeptLayer,
    conv_nodes,
    float_by_design,
    head_nodes,
    head_output_convs,
    int8_conv_names,
    keep_float,
)
from centernet.quantize.graph import graph_order, set_batch, to_fp16
from centernet.quantize.ort_quantize import prepare_for_quantization, quantize_qdq
from centernet.quantize.result import BuildResult
from centernet.quantize.search import describe_search, search_float_layers, search_reason
from centernet.quantize.search_scoring import search_probes
from centernet.quantize.sqnr import choose_float_layers_by_sqnr, worst_by_sqnr
from centernet.types import ModelSpec


def build_qdq(
    input_path: Path, output_path: Path, config: BuildConfig, progress: Progress | None = None
) -> BuildResult:
    """Write ``output_path``: the fp32 export ``input_path`` at ``config.precision``
    (``recipe.build`` has checked the config). ``progress`` hears each stage of an int8
    build, image by image."""
    started = time.perf_counter()
    model, spec = load_centernet_onnx(input_path)
    if spec.precision != "fp32":
        raise CenterNetError(
            f"{input_path} is already a {spec.precision} build; build from the fp32 export"
        )
    if config.dynamic_batch or config.batch:
        spec.batch = "dynamic" if config.dynamic_batch else int(config.batch)  # type: ignore[arg-type]
        set_batch(model, spec.batch)
    reader_batch = 1 if spec.dynamic_batch else int(spec.batch)
    paths: list[Path] = []
    calib = config.calibration
    if config.precision.startswith("int8"):
        assert calib is not None
        paths = calibration_paths(calib.images, calib.count, reader_batch)
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
            built = _build_int8(
                float_path, Path(tmp), spec, paths, reader_batch, config, result, progress
            )
            _record_int8(spec, config, result, len(paths))
            result.nodes_quantized = len(int8_conv_names(built))
        spec.precision = config.precision
        write_spec(built, spec)
        onnx.save(built, str(output_path))
    result.seconds = time.perf_counter() - started
    result.size_bytes = output_path.stat().st_size
    return result


def _record_int8(spec: ModelSpec, config: BuildConfig, result: BuildResult, count: int) -> None:
    """What the ModelSpec says about an int8 build: calibration, float layers, fine-tuning,
    the layer search."""
    calib = config.calibration
    assert calib is not None
    spec.extra["calibration"] = {**calib.describe("onnx"), "count": count}
    if result.ranges_reused:
        spec.extra["calibration"]["ranges"] = f"reused {Path(str(calib.ranges_file)).name}"
    spec.extra["kept_float"] = [asdict(k) for k in result.kept]
    if result.finetune is not None and config.finetune is not None:
        spec.extra["finetune"] = {
            **asdict(config.finetune),
            **{k: round(v, 5) if isinstance(v, float) else v
               for k, v in asdict(result.finetune).items()},
        }  # fmt: skip
    if result.search is not None:
        spec.extra["float_layer_search"] = describe_search(result.search, config.search)


def _build_int8(
    float_path: Path,
    workdir: Path,
    spec: ModelSpec,
    paths: list[Path],
    batch: int,
    config: BuildConfig,
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
    _float_by_design(prepared, config, result)
    if config.finetune is not None:
        from centernet.quantize.finetune import finetune

        tuned_path = workdir / "finetuned.onnx"
        floats = [k.node for k in result.kept] + list(config.keep_float_layers)
        result.finetune = finetune(
            onnx.load(str(float_path)), spec, paths, floats, tuned_path, config.finetune, progress
        )
        prepared_path = workdir / "prepared_finetuned.onnx"
        prepared = prepare_for_quantization(tuned_path, prepared_path)
    exclude = [k.node for k in result.kept]
    mixed_method = config.search_method("onnx") if config.precision == "int8-mixed" else None
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
    stage = f"{config.precision}: calibration ({calib.method_for('onnx')})"
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
    if mixed_method == "task":
        built = _search(
            built, prepared, reference, prepared_path, qdq_path, paths, spec, batch, config,
            result, progress,
        )  # fmt: skip
    return built


def _float_by_design(prepared: onnx.ModelProto, config: BuildConfig, result: BuildResult) -> None:
    """The layers every int8 build keeps float (and the head outputs, unless asked not
    to), after checking that every layer the user names exists."""
    heads = head_output_convs(prepared) if config.head_outputs_float else []
    result.kept += float_by_design(prepared)
    result.kept += [KeptLayer(h, "head output (logits): no Q/DQ on hm/wh/reg") for h in heads]
    known = {node.name for node in conv_nodes(prepared)}
    unknown = [name for name in config.keep_float_layers if name not in known]
    if unknown:
        raise CenterNetError(
            f"`keep_float_layers` names no convolution of this model: {unknown[0]}"
        )


def _search(
    built: onnx.ModelProto,
    prepared: onnx.ModelProto,
    reference: onnx.ModelProto,
    prepared_path: Path,
    qdq_path: Path,
    paths: list[Path],
    spec: ModelSpec,
    batch: int,
    config: BuildConfig,
    result: BuildResult,
    progress: Progress | None,
) -> onnx.ModelProto:
    """int8-mixed's task search on the QDQ graph: the layers it picks made float."""
    search = config.search
    probe, check = search_probes(paths, spec, search)
    candidates = sorted(int8_conv_names(built), key=graph_order(built))
    if search.max_candidates is not None and len(candidates) > search.max_candidates:
        candidates = worst_by_sqnr(
            prepared_path, qdq_path, paths[: search.probe_images], spec, batch,
            candidates, search.max_candidates, progress,
        )  # fmt: skip
    found = search_float_layers(
        probe, prepared, built, candidates, keep_float, progress, check, reference
    )
    result.search = found
    result.kept += [KeptLayer(layer.node, search_reason(layer)) for layer in found.chosen]
    return keep_float(built, prepared, [layer.node for layer in found.chosen])
