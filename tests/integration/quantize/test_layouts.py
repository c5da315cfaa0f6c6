"""Every convolution a build quantizes runs as an int8 kernel on the engines that run it
(read from OpenVINO's runtime model and ONNX Runtime's optimized graph), and whatever
stays float is named with its reason: a QDQ .onnx on ONNX Runtime and on OpenVINO, an
OpenVINO IR on OpenVINO."""

from __future__ import annotations

import shutil

import onnx
import pytest

from centernet.quantize.config import BuildConfig, CalibrationConfig, SearchConfig
from centernet.quantize.float_layers import conv_nodes
from centernet.quantize.kernels import (
    float_fallbacks,
    openvino_int8_convolutions,
    quantized_convolutions,
)
from centernet.quantize.recipe import build

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def calib_dir(photo_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for p in photo_paths[:3]:
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def builds(tiny_onnx_dynamic, calib_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("kinds")
    calibration = CalibrationConfig(str(calib_dir), 3)
    quick = SearchConfig(probe_images=2, check_images=1, max_layers=2, max_candidates=2)
    made = {}
    for suffix in (".onnx", ".xml"):
        for precision in ("int8", "int8-mixed"):
            search = quick if precision == "int8-mixed" else SearchConfig()
            config = BuildConfig(precision, calibration, search=search)
            made[suffix, precision] = build(
                tiny_onnx_dynamic, out / f"{precision}{suffix}", config
            )
    return made


@pytest.mark.parametrize("precision", ["int8", "int8-mixed"])
@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_a_qdq_build_runs_every_quantized_convolution_as_int8(builds, engine, precision):
    result = builds[".onnx", precision]
    model = onnx.load(str(result.path))
    quantized = quantized_convolutions(model)
    assert len(quantized) == result.nodes_quantized > 0
    assert float_fallbacks(result.path, engine) == []
    every = {n.name for n in conv_nodes(model)}
    assert every - quantized <= {k.node for k in result.kept}  # each float one named


@pytest.mark.parametrize("precision", ["int8", "int8-mixed"])
def test_an_ir_build_runs_every_quantized_convolution_as_int8(builds, precision):
    import openvino as ov

    from centernet.quantize.nncf_graph import int8_convolutions

    result = builds[".xml", precision]
    model = ov.Core().read_model(str(result.path))
    quantized = {name.removesuffix("/WithoutBiases") for name in int8_convolutions(model)}
    runs = openvino_int8_convolutions(result.path)
    assert quantized and all(runs[name] for name in quantized)
    float_ones = {name for name, int8 in runs.items() if not int8}
    assert float_ones <= {k.node for k in result.kept}  # each float one named, with why


def test_the_build_summary_names_every_float_layer_and_the_int8_share(
    tiny_onnx_dynamic, calib_dir, tmp_path, capsys
):
    from centernet.cli import main

    out = tmp_path / "m.xml"
    args = [
        *("build", str(tiny_onnx_dynamic), "-o", str(out), "--precision", "int8"),
        *("--calib-images", str(calib_dir), "--calib-count", "3"),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "an OpenVINO IR" in printed and "of the convolution work" in printed
    floats = [line for line in printed.splitlines() if line.strip().startswith("float:")]
    runs = openvino_int8_convolutions(out)
    assert len(floats) == sum(not int8 for int8 in runs.values())
    assert any("head output" in line for line in floats)
