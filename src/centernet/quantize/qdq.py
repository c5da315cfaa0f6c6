"""A QDQ ``.onnx`` build of an fp32 export: fp32, fp16 (weights and activations in float16,
the graph's inputs and outputs kept float32), or int8 / int8-mixed by ONNX Runtime's
``quantize_static`` placement (``ort_qdq.py``), which ONNX Runtime fuses into its int8
kernels and OpenVINO runs as int8 too (each at every quantized convolution, checked).

Why not NNCF's own QDQ placement for OpenVINO (NNCF's ONNX backend: shared Concat
scales, signed activations)? Measured on the full-size DLAV0-34 (BENCHMARKS.md, issue
30): OpenVINO runs it as fast as NNCF's IR but, on an AVX2-only CPU, far off the float
model (hm SQNR 6 dB against 14 dB for the same quantization as an IR), and ONNX Runtime
runs 33 of its 61 convolutions in float. The fast OpenVINO file is the IR (an ``.xml``
output, ``nncf_ir.py``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import onnx

from centernet.engines import default_onnx_engine
from centernet.errors import CenterNetError
from centernet.modelfile.spec import load_centernet_onnx, write_spec
from centernet.progress import Progress
from centernet.quantize.calibration import calibration_paths
from centernet.quantize.config import BuildConfig
from centernet.quantize.cost import convolution_macs, int8_share
from centernet.quantize.float_layers import conv_nodes, int8_conv_names
from centernet.quantize.graph import set_batch, to_fp16
from centernet.quantize.ort_qdq import build_int8_for_onnxruntime
from centernet.quantize.result import BuildResult
from centernet.quantize.search import describe_search
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
            built = build_int8_for_onnxruntime(
                float_path, Path(tmp), spec, paths, reader_batch, config, result, progress
            )
            _record_int8(spec, config, result, len(paths))
            int8 = int8_conv_names(built)
            result.nodes_quantized = len(int8)
            result.int8_share = int8_share(convolution_macs(model, spec.input_size), int8)
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
    spec.extra["calibration"] = {**calib.describe("onnxruntime"), "count": count}
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
        trials = default_onnx_engine(spec.arch)  # what ran the search's trials
        spec.extra["float_layer_search"] = describe_search(result.search, config.search, trials)
