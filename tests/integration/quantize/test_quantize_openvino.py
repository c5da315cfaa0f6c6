"""OpenVINO IR builds (NNCF int8, fp32, fp16): the spec in the IR's runtime info, the layers
kept float really float, detections near fp32, and `.xml` models through Detector and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from centernet.cli import main
from centernet.engines import EngineConfig, open_engine
from centernet.errors import CenterNetError, ModelFileError
from centernet.modelfile.spec import read_file_spec
from centernet.runtime.detector import Detector
from centernet.runtime.images import read_image
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into
from centernet.types import ModelSpec
from tests.helpers import TINY_CLASSES, TINY_SIZE, assert_detections_close, write_self_annotations

ov = pytest.importorskip("openvino")
pytest.importorskip("nncf")

from centernet.quantize.config import (  # noqa: E402  (after the importorskips)
    BuildConfig,
    CalibrationConfig,
    NncfConfig,
)
from centernet.quantize.nncf_graph import CONVOLUTIONS, int8_convolutions  # noqa: E402
from centernet.quantize.nncf_ir import build_openvino  # noqa: E402
from centernet.quantize.recipe import build  # noqa: E402

HEAD_OUTPUT_CONVS = {f"/network/{h}/{h}.2/Conv": "head output conv" for h in ("hm", "wh", "reg")}
BACKBONE_CONV = "/network/base/level2/tree1/conv1/Conv"  # one more, named by the caller
# int8 of this tiny random-weight network, calibrated on two photos, scored on the others:
# hm SQNR against fp32 measured 17 dB (the QDQ build's stated floor is 12 dB), and 72 % of
# the int8 top-20 boxes have a same-class fp32 top-40 box at IoU >= 0.5 (scores of a random
# network are nearly flat, so int8 noise reorders them: "most", not "all").
HM_MIN_SQNR_DB = 12.0
MIN_TOP_BOX_AGREEMENT = 0.5


@pytest.fixture(scope="module")
def calib_dir(photo_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for p in photo_paths[:2]:
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def int8_ir(tiny_onnx_dynamic, calib_dir, tmp_path_factory):
    config = ir_config("int8", calib_dir, count=2)
    keep = {**HEAD_OUTPUT_CONVS, BACKBONE_CONV: "asked by the test"}
    out = tmp_path_factory.mktemp("ir") / "int8.xml"
    return build_openvino(tiny_onnx_dynamic, out, config, keep)


def ir_config(precision: str, calib_dir=None, count: int = 100, **changes) -> BuildConfig:
    """An OpenVINO IR build's settings."""
    calibration = CalibrationConfig(str(calib_dir), count) if calib_dir is not None else None
    return BuildConfig(precision, calibration, **changes)


def _inputs(paths) -> np.ndarray:
    config = PreprocessConfig(input_size=TINY_SIZE)
    return np.stack([preprocess_into(read_image(p), config)[0] for p in paths])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a, area_b = (np.prod(x[:, 2:] - x[:, :2], axis=1) for x in (a, b))
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def test_int8_ir_opens_with_its_spec_and_detects_near_fp32(int8_ir, tiny_onnx_dynamic, photo_paths):
    engine = open_engine(int8_ir.path)  # auto: the openvino engine for a .xml
    spec = engine.spec
    assert engine.name == "openvino" and engine.inference_precision == "fp32"
    assert spec == int8_ir.spec and spec.precision == "int8" and spec.class_names == TINY_CLASSES
    assert spec.input_size == TINY_SIZE and spec.batch == "dynamic"
    assert spec.extra["target"] == "openvino" and spec.extra["calibration"]["count"] == 2
    kept = {k["node"] for k in spec.extra["kept_float"]}
    assert {*HEAD_OUTPUT_CONVS, BACKBONE_CONV} <= kept
    assert int8_ir.nodes_quantized == int8_ir.nodes_total - len(int8_ir.kept) > 40

    x = _inputs(photo_paths[2:])  # images not seen in calibration
    want, got = open_engine(tiny_onnx_dynamic)(x), engine(x)
    assert all(got[n].shape == want[n].shape and got[n].dtype == np.float32 for n in want)
    error = got["hm"] - want["hm"]
    assert 10 * np.log10(np.sum(want["hm"] ** 2) / np.sum(error**2)) >= HM_MIN_SQNR_DB
    matched = []
    unseen = photo_paths[2:]
    for a, b in zip(Detector(engine)(unseen), Detector(tiny_onnx_dynamic)(unseen)):
        a, b = a[:20], b[:40]
        same = (_iou(a.xyxy, b.xyxy) >= 0.5) & (a.class_ids[:, None] == b.class_ids[None, :])
        matched += same.any(axis=1).tolist()
    assert np.mean(matched) >= MIN_TOP_BOX_AGREEMENT


def test_layers_kept_float_and_the_decode_have_no_fake_quantize(int8_ir):
    model = ov.Core().read_model(int8_ir.path)
    ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    int8 = int8_convolutions(model)
    assert len(int8) == int8_ir.nodes_quantized
    for onnx_name in [*HEAD_OUTPUT_CONVS, BACKBONE_CONV]:
        op = ops[int8_ir.openvino_names[onnx_name]]  # e.g. .../Conv/WithoutBiases
        assert op.get_type_name() in CONVOLUTIONS and op.get_friendly_name() not in int8
        source = op.input(0).get_source_output().get_node()
        assert source.get_type_name() != "FakeQuantize", onnx_name
    # Nothing between a head's last convolution and the outputs is quantized: walking up
    # from each output (hm_max, hm, wh, reg) to the convolution that feeds it meets no
    # FakeQuantize, so the hm/wh/reg logits, the Sigmoid and the max-pool stay float.
    for result in model.get_results():
        pending = [result.input(0).get_source_output().get_node()]
        while pending:
            op = pending.pop()
            assert op.get_type_name() != "FakeQuantize", result.get_friendly_name()
            if op.get_type_name() not in CONVOLUTIONS:
                pending += [i.get_source_output().get_node() for i in op.inputs()]
    assert any(op.get_type_name() == "FakeQuantize" for op in ops.values())  # it is int8


def test_spec_lives_in_the_runtime_info_and_reads_without_torch_or_nncf(int8_ir):
    stored = ov.Core().read_model(int8_ir.path).get_rt_info(["centernet", "spec"])
    assert ModelSpec.from_json(stored.astype(str)) == read_file_spec(int8_ir.path) == int8_ir.spec
    code = (
        "import sys\n"
        "from centernet.modelfile.spec import read_file_spec\n"
        "import centernet.engines.openvino\n"
        f"assert read_file_spec({str(int8_ir.path)!r}).precision == 'int8'\n"
        "loaded = {'torch', 'nncf', 'openvino'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_float_ir_builds_match_the_export(precision, tiny_onnx_dynamic, photo_paths, tmp_path):
    result = build_openvino(
        tiny_onnx_dynamic, tmp_path / f"{precision}.xml", ir_config(precision, batch=2)
    )
    engine = open_engine(result.path)
    assert engine.spec.precision == precision and engine.batch_size == 2
    got, want = Detector(engine)(photo_paths), Detector(tiny_onnx_dynamic)(photo_paths)
    for a, b in zip(got, want):
        if precision == "fp32":
            assert_detections_close(a, b, atol=1e-3)
        else:  # fp16 weights: the maps agree to ~3 significant digits
            assert np.abs(a.scores[:10] - b.scores[:10]).max() < 5e-3


def test_cli_detect_and_eval_run_an_xml(int8_ir, photo_paths, tmp_path, capsys):
    pytest.importorskip("pycocotools")
    out = tmp_path / "detect"
    args = ["detect", str(int8_ir.path), *map(str, photo_paths), "--threshold", "0"]
    assert main([*args, "--out", str(out)]) == 0
    entries = json.loads((out / "detections.json").read_text())
    assert {e["file_name"] for e in entries} == {p.name for p in photo_paths}
    ann = tmp_path / "instances.json"
    write_self_annotations(Detector(int8_ir.path), photo_paths, ann)
    args = ["eval", str(int8_ir.path), "--images", str(photo_paths[0].parent), "--ann", str(ann)]
    assert main([*args, "--out", str(tmp_path / "eval"), "--batch", "2"]) == 0
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["metrics"]["AP"] == pytest.approx(1.0)  # its own boxes: the classes map right


def test_xml_on_another_engine_is_one_clear_line(int8_ir, photo_paths, tmp_path, capsys):
    for engine in ("onnxruntime", "torch"):
        with pytest.raises(CenterNetError, match="is an OpenVINO IR: the .* engine cannot run"):
            open_engine(int8_ir.path, engine)
    args = ["detect", str(int8_ir.path), str(photo_paths[0]), "--out", str(tmp_path)]
    assert main([*args, "--engine", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "use --engine openvino" in err


def test_bf16_on_an_xml_runs_on_native_bf16_cpus_and_is_refused_on_simulated_others(
    int8_ir, photo_paths, monkeypatch
):
    from centernet.engines import openvino

    asked = EngineConfig(precision="bf16")
    if openvino.cpu_has_native_bf16(ov.Core()):
        engine = open_engine(int8_ir.path, options=asked)
        assert engine.inference_precision == "bf16"
        assert engine.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
        assert len(Detector(engine)(photo_paths[0])) == 100
    monkeypatch.setattr(openvino, "cpu_has_native_bf16", lambda core: False)
    with pytest.raises(CenterNetError, match="this CPU has no native bf16"):
        open_engine(int8_ir.path, options=asked)


def test_bad_builds_and_bad_ir_files(tiny_onnx_dynamic, calib_dir, tmp_path):
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "a.jpg").write_text("not an image")
    xml = tmp_path / "x.xml"
    cases = {  # message -> (output, settings, layers kept float, direct back-end call)
        "written as a .xml": (tmp_path / "x.onnx", ir_config("fp32"), None, True),
        "needs calibration images": (xml, ir_config("int8"), None, False),
        "unknown `nncf.bias_correction`": (
            xml, ir_config("int8", calib_dir, nncf=NncfConfig(bias_correction="x")), None, False,
        ),
        "does not exist": (xml, ir_config("int8", tmp_path / "missing"), None, False),
        "no calibration batch could be read .*a.jpg: not a decodable image": (
            xml, ir_config("int8", unreadable), None, False,
        ),
        "not in the OpenVINO model: /network/nope": (
            xml, ir_config("int8", calib_dir), {"/network/nope": ""}, True,
        ),
    }  # fmt: skip
    for message, (out, config, keep, direct) in cases.items():
        with pytest.raises(CenterNetError, match=message):
            if direct:
                build_openvino(tiny_onnx_dynamic, out, config, keep)
            else:
                build(tiny_onnx_dynamic, out, config)
    assert not xml.exists()

    lonely = tmp_path / "lonely.xml"
    lonely.write_text("<net></net>")
    with pytest.raises(ModelFileError, match="its weights lonely.bin are missing"):
        open_engine(lonely)
    lonely.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ModelFileError, match="not an OpenVINO IR"):
        open_engine(lonely)


def _int8_weight_extent(path) -> int:
    """The largest |value| of the IR's int8 weight constants."""
    model = ov.Core().read_model(str(path))
    extents = [
        int(np.abs(op.get_data().astype(np.int32)).max())
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8
    ]
    assert extents
    return max(extents)


def test_the_overflow_fix_keeps_weights_in_7_bits_and_auto_follows_this_cpu(
    tiny_onnx_dynamic, calib_dir, tmp_path
):
    """7-bit weights (|w| <= 64) everywhere with "enable", 8-bit without; "auto" is
    "enable" exactly when this CPU has no int8 dot product, and the file records it."""
    from dataclasses import replace

    from centernet.measure.machine import cpu_model_and_flags
    from centernet.quantize.nncf_common import INT8_DOT_PRODUCT_FLAGS

    extents, recorded = {}, {}
    for fix in ("enable", "disable", "auto"):
        config = ir_config("int8", calib_dir, count=2)
        config = replace(config, nncf=NncfConfig(overflow_fix=fix))
        result = build_openvino(tiny_onnx_dynamic, tmp_path / f"{fix}.xml", config)
        extents[fix] = _int8_weight_extent(result.path)
        recorded[fix] = read_file_spec(result.path).extra["calibration"]["overflow_fix"]
    assert extents["enable"] <= 64 < extents["disable"]
    assert recorded["enable"] == "enable" and recorded["disable"] == "disable"
    vnni = set(cpu_model_and_flags()[1]) & set(INT8_DOT_PRODUCT_FLAGS)
    assert recorded["auto"] == ("first_layer" if vnni else "enable")
    assert (extents["auto"] <= 64) == (not vnni)
