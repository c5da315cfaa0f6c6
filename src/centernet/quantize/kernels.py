"""Which quantized convolutions an engine actually runs as int8 kernels.

A QDQ graph only asks for int8: each engine decides. OpenVINO turns Quantize/Dequantize
pairs into FakeQuantize and picks a kernel per layer, which its runtime model reports
(``runtimePrecision`` of each Convolution / GroupConvolution / Deconvolution: u8 or i8
for an int8 kernel); ONNX Runtime fuses DequantizeLinear -> Conv -> QuantizeLinear into
QLinearConv where it can, and otherwise runs a float Conv between Q/DQ pairs, which its
optimized graph shows. A quantized convolution that runs in float costs the Q/DQ work and
gains nothing; the builds check for it and keep such a layer float, and the tests fail on it.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import onnx

from centernet.errors import MissingDependencyError
from centernet.quantize.float_layers import KeptLayer, keep_float

_OPENVINO_CONVOLUTIONS = ("Convolution", "GroupConvolution", "Deconvolution")
_INT8 = ("u8", "i8")


def quantized_convolutions(model: onnx.ModelProto) -> set[str]:
    """Convolutions of a QDQ graph whose weights arrive through DequantizeLinear."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {
        n.name
        for n in model.graph.node
        if n.op_type in ("Conv", "ConvTranspose") and n.input[1] in dequantized
    }


def openvino_int8_convolutions(model: object, threads: int = 1) -> dict[str, bool]:
    """Convolution name -> whether OpenVINO's CPU plugin runs it as an int8 kernel, for
    every convolution of ``model`` (a file, or an ``openvino.Model``), compiled with the
    f32 inference precision. Names are the original layers' (an ONNX node's name, without
    the ``/WithoutBiases`` conversion adds)."""
    try:
        import openvino as ov
    except ImportError:
        raise MissingDependencyError("openvino", "openvino") from None
    core = ov.Core()
    source = str(model) if isinstance(model, (str, Path)) else model
    compiled = core.compile_model(
        source,
        "CPU",
        {"INFERENCE_NUM_THREADS": str(threads), "INFERENCE_PRECISION_HINT": ov.Type.f32},
    )
    found: dict[str, bool] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or info["layerType"].astype(str) not in _OPENVINO_CONVOLUTIONS:
            continue
        int8 = info["runtimePrecision"].astype(str) in _INT8
        for name in info["originalLayersNames"].astype(str).split(","):
            name = name.removesuffix("/WithoutBiases")
            if name.endswith(("/Conv", "/ConvTranspose")):
                found[name] = int8
    return found


def onnxruntime_int8_convolutions(path: str | Path) -> set[str]:
    """The convolutions ONNX Runtime's CPU provider fuses into int8 kernels (QLinearConv)
    in its fully optimized graph, by their names in the file."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    return {
        re.sub(r"_token_\d+$", "", node.name)
        for node in optimized.graph.node
        if node.op_type in ("QLinearConv", "ConvInteger")
    }


def float_fallbacks(path: str | Path, engine: str) -> list[str]:
    """The quantized convolutions of a QDQ ``.onnx`` that ``engine`` runs in float, in
    graph order: each should be int8 there, or be kept float by the build."""
    model = onnx.load(str(path), load_external_data=False)
    quantized = quantized_convolutions(model)
    if engine == "openvino":
        int8 = {name for name, is_int8 in openvino_int8_convolutions(path).items() if is_int8}
    else:
        int8 = onnxruntime_int8_convolutions(path)
    order = [n.name for n in model.graph.node if n.name in quantized]
    return [name for name in order if name not in int8]


def float_where_the_engine_runs_float(
    built: onnx.ModelProto,
    float_model: onnx.ModelProto,
    engine: str,
    workdir: Path,
    reason: str | None = None,
) -> tuple[onnx.ModelProto, list[KeptLayer]]:
    """``built`` with every quantized convolution that ``engine`` runs in float on this
    machine made float (``keep_float``), and those layers with the reason: a build never
    pays for Q/DQ around a float kernel (e.g. OpenVINO's depthwise ConvTranspose on CPUs
    without an int8 kernel for it)."""
    path = workdir / "kernel_check.onnx"
    onnx.save(built, str(path))
    fallbacks = float_fallbacks(path, engine)
    path.unlink()
    if not fallbacks:
        return built, []
    name = "OpenVINO" if engine == "openvino" else "ONNX Runtime"
    reason = reason or f"{name} runs it in float on this CPU: int8 would only add Q/DQ work"
    return keep_float(built, float_model, fallbacks), [KeptLayer(n, reason) for n in fallbacks]
