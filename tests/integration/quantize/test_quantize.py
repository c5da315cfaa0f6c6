"""Precision builds (QDQ .onnx) against fp32, calibration through the real pre-processing,
batch independence, and OpenVINO against ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from centernet.engines import open_engine
from centernet.errors import CenterNetError
from centernet.quantize.config import BuildConfig, CalibrationConfig, SearchConfig
from centernet.quantize.float_layers import head_nodes, head_output_convs
from centernet.quantize.recipe import build
from centernet.runtime.detector import Detector
from centernet.runtime.images import read_image
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into
from tests.helpers import TINY_SIZE, assert_detections_close

# Stated tolerances, on images unseen in calibration: the SQNR of hm against fp32 (dB),
# and its mean absolute difference. fp16 keeps ~3 significant digits (measured 51 dB);
# int8 of this tiny random-weight network calibrated on two photos measured 14 dB. The
# accuracy that matters, COCO AP per precision on a trained model, is in BENCHMARKS.md.
HM_MIN_SQNR_DB = {"fp32": 100.0, "fp16": 40.0, "int8": 12.0, "int8-mixed": 12.0}
HM_MAX_MEAN_ABS = {"fp32": 1e-7, "fp16": 1e-3, "int8": 0.02, "int8-mixed": 0.02}


@pytest.fixture(scope="module")
def calib_dir(photo_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for p in photo_paths[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


@pytest.fixture(scope="module")
def builds(tiny_onnx_dynamic, calib_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("builds")
    calibration = CalibrationConfig(str(calib_dir), count=2)
    return {
        p: build(
            tiny_onnx_dynamic,
            out / f"{p}.onnx",
            BuildConfig(p, calibration if p.startswith("int8") else None),
        )
        for p in ("fp32", "fp16", "int8", "int8-mixed")
    }


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "int8-mixed"])
def test_each_precision_matches_fp32(builds, tiny_onnx_dynamic, photo_paths, precision):
    result = builds[precision]
    assert result.spec.precision == precision
    reference, built = open_engine(tiny_onnx_dynamic), open_engine(result.path)
    assert built.spec.precision == precision
    config = PreprocessConfig(input_size=TINY_SIZE)
    x = np.stack([preprocess_into(read_image(p), config)[0] for p in photo_paths[2:]])
    want, got = reference(x), built(x)
    error = got["hm"] - want["hm"]
    sqnr = 10 * np.log10(np.sum(want["hm"] ** 2) / max(np.sum(error**2), 1e-30))
    assert sqnr >= HM_MIN_SQNR_DB[precision]
    assert np.mean(np.abs(error)) <= HM_MAX_MEAN_ABS[precision]
    for name in ("hm", "hm_max", "wh", "reg"):
        assert got[name].dtype == np.float32 and got[name].shape == want[name].shape
    # hm and hm_max stay comparable: every map still has its peaks
    assert all(len(d) == 100 for d in Detector(built)(photo_paths[2:]))


def dequantized_weights(path):
    model = onnx.load(str(path))
    produced_by_dq = {
        o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output
    }
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    return model, {n.name for n in convs if n.input[1] in produced_by_dq}


def test_int8_graph_is_qdq_with_float_logits_and_mixed_records_its_search(builds):
    model, int8_convs = dequantized_weights(builds["int8"].path)
    heads = set(head_nodes(model))
    outputs = set(head_output_convs(model))
    assert len(heads) == 6 and heads - outputs <= int8_convs and not outputs & int8_convs
    int8 = builds["int8"]
    assert len(int8_convs) == int8.nodes_quantized == int8.nodes_total - len(int8.kept)
    by_design = {k.node for k in int8.kept}
    stems = [n.name for n in model.graph.node if n.name.startswith("/network/base/base_layer/")]
    ups = [n.name for n in model.graph.node if n.op_type == "ConvTranspose"]
    assert by_design == {*stems[:1], *ups, *outputs} and len(ups) == 6
    # The in-graph decode stays float: hm comes straight from the Sigmoid, hm_max from a
    # MaxPool reading that same tensor, so hm == hm_max still marks the peaks exactly.
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer["hm"].op_type == "Sigmoid" and producer["hm_max"].op_type == "MaxPool"
    assert producer["hm_max"].input[0] == "hm"
    mixed = builds["int8-mixed"]
    model, mixed_convs = dequantized_weights(mixed.path)
    kept = {k.node for k in mixed.kept}
    assert by_design <= kept and not (kept & mixed_convs)
    assert len(mixed_convs) == mixed.nodes_quantized > 0
    chosen = kept - by_design
    # each chosen by the search, or made float after it because its only reader was
    # (ONNX Runtime cannot then run it as an int8 kernel)
    reasons = [k.reason for k in mixed.kept if k.node in chosen]
    assert all("alone in float" in r or "feeds a layer kept float" in r for r in reasons)
    assert any("alone in float" in r for r in reasons) or not chosen
    search = mixed.spec.extra["float_layer_search"]
    assert search["all_int8"] <= search["chosen"] <= search["float"] and search["float"] > 0.99
    assert len(chosen) <= SearchConfig().max_layers
    calib = mixed.spec.extra["calibration"]
    assert calib == {"images": calib["images"], "count": 2, "method": "minmax-ma"}


def test_int8_mixed_by_sqnr_keeps_every_head_float(tiny_onnx_dynamic, calib_dir, tmp_path):
    config = BuildConfig(
        "int8-mixed",
        CalibrationConfig(str(calib_dir), count=2),
        search=SearchConfig("sqnr"),
    )
    result = build(tiny_onnx_dynamic, tmp_path / "sqnr.onnx", config)
    model, int8_convs = dequantized_weights(result.path)
    kept = {k.node for k in result.kept}
    assert set(head_nodes(model)) <= kept and not (kept & int8_convs)
    assert any("dB" in k.reason for k in result.kept)
    assert result.search is None and "float_layer_search" not in result.spec.extra


def test_bad_calibration_folders(tiny_onnx_dynamic, tmp_path, calib_dir):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    cases = {
        str(tmp_path / "missing"): "does not exist",
        str(tmp_path / "empty"): "holds no images",
        str(tmp_path / "texts"): "holds no images",
    }
    for folder, message in cases.items():
        with pytest.raises(CenterNetError, match=message):
            build(
                tiny_onnx_dynamic,
                tmp_path / "x.onnx",
                BuildConfig("int8", CalibrationConfig(folder)),
            )
    with pytest.raises(CenterNetError, match="fewer than one batch of 4"):
        build(
            tiny_onnx_dynamic,
            tmp_path / "x.onnx",
            BuildConfig("int8", CalibrationConfig(str(calib_dir)), batch=4),
        )
    with pytest.raises(CenterNetError, match="needs calibration images"):
        build(tiny_onnx_dynamic, tmp_path / "x.onnx", BuildConfig("int8"))


def test_build_never_overwrites_its_input(tiny_onnx_dynamic, tmp_path):
    before = tiny_onnx_dynamic.read_bytes()
    with pytest.raises(CenterNetError, match="refusing to overwrite"):
        build(tiny_onnx_dynamic, tiny_onnx_dynamic, BuildConfig("fp16"))
    assert tiny_onnx_dynamic.read_bytes() == before


def test_static_batch_build(tiny_onnx_dynamic, tmp_path, photo_paths):
    result = build(tiny_onnx_dynamic, tmp_path / "b3.onnx", BuildConfig("fp32", batch=3))
    engine = open_engine(result.path)
    assert engine.batch_size == 3 and result.spec.batch == 3
    dims = onnx.load(str(result.path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[:2]] == [3, 3]  # H and W stay free in this export
    # 4 images through a batch-3 model: the second batch is padded, results unchanged
    paths = photo_paths[:4]
    for a, b in zip(Detector(engine)(paths), Detector(tiny_onnx_dynamic, batch_size=1)(paths)):
        assert_detections_close(a, b, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_dynamic_batch_1_4_8_identical(builds, photo_paths, precision):
    paths = [*photo_paths, *photo_paths][:8]
    runs = [Detector(builds[precision].path, batch_size=b)(paths) for b in (1, 4, 8)]
    for i in range(len(paths)):
        for other in runs[1:]:
            assert np.array_equal(runs[0][i].class_ids, other[i].class_ids)
            assert np.allclose(runs[0][i].scores, other[i].scores, atol=1e-6, rtol=0)
            assert np.allclose(runs[0][i].xyxy, other[i].xyxy, atol=1e-4, rtol=0)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_openvino_matches_onnxruntime(builds, photo_paths, precision, tmp_path):
    """Whatever the CPU: on one with native bf16, OpenVINO would run float layers in bf16
    unless told otherwise (boxes then differ by ~1e-2 px); fp32 must mean fp32."""
    pytest.importorskip("openvino")
    from centernet.engines import EngineConfig

    ov = Detector(builds[precision].path, options=EngineConfig(cache_dir=str(tmp_path)))
    assert ov.engine.inference_precision == "fp32"
    ort = Detector(builds[precision].path)
    if precision == "fp32":
        for a, b in zip(ov(photo_paths), ort(photo_paths)):
            assert_detections_close(a, b, atol=1e-3)
    elif precision == "fp16":  # outputs found by name (the ports also carry cast names)
        assert set(ov.engine.output_names) == {"hm_max", "hm", "wh", "reg"}
        for a, b in zip(ov(photo_paths), ort(photo_paths)):
            assert len(a) == len(b) == 100
    else:  # two int8 kernel sets round differently: the maps agree to quantization noise
        config = PreprocessConfig(input_size=TINY_SIZE)
        x = np.stack([preprocess_into(read_image(p), config)[0] for p in photo_paths])
        a, b = ov.engine(x)["hm"], ort.engine(x)["hm"]
        reference = open_engine(builds["fp32"].path)(x)["hm"]
        for got in (a, b):  # each as close to fp32 as the int8 tolerance above
            error = got - reference
            assert 10 * np.log10(np.sum(reference**2) / np.sum(error**2)) >= HM_MIN_SQNR_DB["int8"]
        assert np.mean(np.abs(a - b)) < HM_MAX_MEAN_ABS["int8"]


def _compiled_precision(engine) -> str:
    """The inference precision OpenVINO compiled the model with (e.g. 'f32', 'bf16')."""
    return engine.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()


def test_openvino_bf16_only_when_asked_native_bf16_cpu_runs_it_others_refuse(
    builds, photo_paths, tmp_path
):
    pytest.importorskip("openvino")
    from centernet.engines import EngineConfig
    from centernet.engines.openvino import cpu_has_native_bf16

    default = open_engine(builds["fp32"].path, "openvino", EngineConfig(cache_dir=str(tmp_path)))
    assert _compiled_precision(default) == "f32"
    assert (
        _compiled_precision(
            open_engine(builds["int8"].path, "openvino", EngineConfig(cache_dir=str(tmp_path)))
        )
        == "f32"
    )
    asked = EngineConfig(cache_dir=str(tmp_path), precision="bf16")
    if not cpu_has_native_bf16(default.core):
        with pytest.raises(CenterNetError, match="no native bf16"):
            open_engine(builds["fp32"].path, "openvino", asked)
        return
    bf16 = open_engine(builds["fp32"].path, "openvino", asked)
    assert bf16.inference_precision == "bf16" and _compiled_precision(bf16) == "bf16"
    config = PreprocessConfig(input_size=TINY_SIZE)
    x = np.stack([preprocess_into(read_image(p), config)[0] for p in photo_paths[:2]])
    reference = open_engine(builds["fp32"].path)(x)["hm"]
    error = bf16(x)["hm"] - reference  # bf16 keeps ~3 significant digits: close, not equal
    assert 0 < np.max(np.abs(error)) < 0.05
    assert np.max(np.abs(default(x)["hm"] - reference)) < 1e-4


def test_bf16_is_refused_where_the_cpu_lacks_it_and_by_other_engines(builds, monkeypatch):
    pytest.importorskip("openvino")
    from centernet.engines import EngineConfig, openvino

    monkeypatch.setattr(openvino, "cpu_has_native_bf16", lambda core: False)
    with pytest.raises(CenterNetError, match="this CPU has no native bf16"):
        open_engine(builds["fp32"].path, "openvino", EngineConfig(precision="bf16"))
    with pytest.raises(CenterNetError, match="onnxruntime engine has no run-time bf16"):
        open_engine(builds["fp32"].path, "onnxruntime", EngineConfig(precision="bf16"))


def test_openvino_serves_every_batch_and_keep_res_size_from_one_compile(
    tiny_onnx_dynamic, photo_paths, tmp_path
):
    """The model compiles once from its file (dynamic batch and size), and gives ONNX
    Runtime's boxes at batch 1 and 3 and for keep_res images of different sizes."""
    pytest.importorskip("openvino")
    from centernet.engines import EngineConfig

    options = EngineConfig(cache_dir=str(tmp_path))
    engine = open_engine(tiny_onnx_dynamic, "openvino", options)
    compiled = engine.compiled
    for keep_res, batch in ((False, 1), (False, 3), (True, 1)):
        ov = Detector(engine, batch_size=batch, keep_res=keep_res)
        ort = Detector(tiny_onnx_dynamic, batch_size=batch, keep_res=keep_res)
        for a, b in zip(ov(photo_paths[:3]), ort(photo_paths[:3])):
            assert_detections_close(a, b, atol=1e-3)
    assert engine.compiled is compiled


@pytest.mark.parametrize(
    ("method", "recorded"),
    [
        ("minmax", {"method": "minmax"}),
        ("percentile", {"method": "percentile", "percentile": 99.99, "bins": 128}),
        ("entropy", {"method": "entropy", "bins": 256}),  # ORT's entropy: bins^2 work
    ],
)
def test_each_calibration_method_builds_and_is_recorded(
    tiny_onnx_dynamic, calib_dir, tmp_path, photo_paths, method, recorded
):
    tuning = {k: v for k, v in {"percentile": 99.99}.items() if k in recorded}
    tuning |= {"bins": recorded["bins"]} if "bins" in recorded else {}
    calibration = CalibrationConfig(str(calib_dir), 2, method, **tuning)
    result = build(tiny_onnx_dynamic, tmp_path / "m.onnx", BuildConfig("int8", calibration))
    assert result.spec.extra["calibration"] == {
        "images": calib_dir.name, "count": 2, **recorded
    }  # fmt: skip
    assert all(len(d) == 100 for d in Detector(result.path)(photo_paths[2:]))


def test_calibration_ranges_are_written_then_reused_and_refused_for_another_model(
    tiny_onnx_dynamic, calib_dir, tmp_path
):
    """int8 then int8-mixed of one export on one set of images calibrate once: the second
    build reads the ranges the first wrote and gives the same int8 graph."""
    ranges = tmp_path / "ranges.json"
    calibration = CalibrationConfig(str(calib_dir), count=2, ranges_file=str(ranges))
    first = build(tiny_onnx_dynamic, tmp_path / "a.onnx", BuildConfig("int8", calibration))
    assert ranges.is_file() and not first.ranges_reused
    second = build(tiny_onnx_dynamic, tmp_path / "b.onnx", BuildConfig("int8", calibration))
    assert second.ranges_reused and second.spec.extra["calibration"]["ranges"].startswith("reused")
    a, b = onnx.load(str(first.path)), onnx.load(str(second.path))
    scales = {i.name: numpy_helper.to_array(i) for i in a.graph.initializer if "scale" in i.name}
    assert scales and all(
        np.array_equal(scales[i.name], numpy_helper.to_array(i))
        for i in b.graph.initializer
        if i.name in scales
    )
    other = tmp_path / "other.json"  # the same file with one more tensor: another model's
    saved = json.loads(ranges.read_text())
    saved["data"]["not_a_tensor_of_this_model"] = next(iter(saved["data"].values()))
    other.write_text(json.dumps(saved))
    wrong = CalibrationConfig(str(calib_dir), count=2, ranges_file=str(other))
    with pytest.raises(CenterNetError, match="are not this model's"):
        build(tiny_onnx_dynamic, tmp_path / "c.onnx", BuildConfig("int8", wrong))
    entropy = CalibrationConfig(str(calib_dir), count=2, method="entropy", ranges_file=str(ranges))
    with pytest.raises(CenterNetError, match="made with MinMax, not entropy"):
        build(tiny_onnx_dynamic, tmp_path / "d.onnx", BuildConfig("int8", entropy))
