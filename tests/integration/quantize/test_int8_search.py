"""int8 rules on a real graph: no Q/DQ on the logits, layers made float in place, and the
task-aware search finding a layer made sensitive on purpose."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

from centernet.engines import open_engine
from centernet.modelfile.spec import write_spec
from centernet.quantize.config import BuildConfig, CalibrationConfig, NncfConfig, SearchConfig
from centernet.quantize.float_layers import (
    head_nodes,
    head_output_convs,
    int8_conv_names,
    keep_float,
)
from centernet.quantize.ort_quantize import prepare_for_quantization
from centernet.quantize.recipe import build
from centernet.runtime.images import read_image
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into
from tests.helpers import TINY_SIZE, export_tiny

pytest.importorskip("pycocotools", reason="the layer search scores with pycocotools")


@pytest.fixture(scope="module")
def calib_dir(photo_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for p in photo_paths[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


def outputs_of(path, photo_paths) -> dict[str, np.ndarray]:
    config = PreprocessConfig(input_size=TINY_SIZE)
    x = np.stack([preprocess_into(read_image(p), config)[0] for p in photo_paths])
    return open_engine(path)(x)


def test_plain_int8_quantizes_head_3x3_and_leaves_logits_float(
    tiny_onnx_dynamic, calib_dir, tmp_path
):
    result = build(
        tiny_onnx_dynamic,
        tmp_path / "int8.onnx",
        BuildConfig("int8", CalibrationConfig(str(calib_dir), 3)),
    )
    model = onnx.load(str(result.path))
    int8 = int8_conv_names(model)
    outputs = set(head_output_convs(model))
    assert len(outputs) == 3
    assert set(head_nodes(model)) - outputs <= int8  # the 3x3 head convolutions are int8
    assert not outputs & int8
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    logits = {producer[name].output[0] for name in ("wh", "reg")} | {producer["hm"].input[0]}
    assert {producer[t].name for t in logits} == outputs  # straight from the float convs
    for tensor in logits:  # and nothing quantizes them on the way to sigmoid/outputs
        assert all(c.op_type != "QuantizeLinear" for c in consumers.get(tensor, []))
    assert {k.node for k in result.kept} >= outputs


@pytest.mark.parametrize(
    "layer", ["/network/base/level1/level1.0/Conv", "/network/dla_up/ida_1/proj_1/proj_1.0/Conv"]
)
def test_keep_float_feeds_a_layer_float_weights_and_its_float_input(
    tiny_onnx_dynamic, calib_dir, tmp_path, photo_paths, layer
):
    """A layer made float in the QDQ graph computes, in float, exactly what the float model
    computes from the (int8 graph's) tensor before quantization: checked by running that
    layer alone, from the float model, on the edited graph's own input tensor."""
    int8 = build(
        tiny_onnx_dynamic,
        tmp_path / "int8.onnx",
        BuildConfig("int8", CalibrationConfig(str(calib_dir), 3)),
    )
    prepared = prepare_for_quantization(tiny_onnx_dynamic, tmp_path / "prepared.onnx")
    qdq = onnx.load(str(int8.path))
    assert layer in int8_conv_names(qdq)
    edited = keep_float(qdq, prepared, [layer])
    onnx.checker.check_model(edited)
    assert layer not in int8_conv_names(edited)
    node = next(n for n in edited.graph.node if n.name == layer)
    producer = {o: n for n in edited.graph.node for o in n.output}
    assert producer[node.input[0]].op_type not in ("DequantizeLinear", "QuantizeLinear")
    # expose the layer's input and output, run the edited graph
    for name in (node.input[0], node.output[0]):
        edited.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    write_spec(edited, int8.spec)
    onnx.save(edited, str(tmp_path / "edited.onnx"))
    config = PreprocessConfig(input_size=TINY_SIZE)
    x = np.stack([preprocess_into(read_image(p), config)[0] for p in photo_paths[:2]])
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(tmp_path / "edited.onnx"), providers=["CPUExecutionProvider"]
    )
    layer_in, layer_out = session.run([node.input[0], node.output[0]], {"input": x})
    # the same convolution from the float model, alone, on that input
    original = next(n for n in prepared.graph.node if n.name == layer)
    weights = {i.name: i for i in prepared.graph.initializer}
    alone = onnx.helper.make_model(
        onnx.helper.make_graph(
            [
                onnx.helper.make_node(
                    "Conv", ["x", *original.input[1:]], ["y"], **_attributes(original)
                )
            ],
            "alone",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
            [weights[name] for name in original.input[1:]],
        ),
        opset_imports=prepared.opset_import,
    )
    want = ort.InferenceSession(alone.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["y"], {"x": layer_in}
    )[0]
    np.testing.assert_allclose(layer_out, want, rtol=1e-5, atol=1e-5)
    assert (layer_in >= 0).all()  # a Relu folded into a QuantizeLinear is re-created


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


SENSITIVE = "/network/base/level1/level1.0/Conv"


def network_with_a_fragile_activation(tiny_network):
    """The same function in float, but one channel of level0's output is 1000x larger (and
    level1 reads it 1000x weaker): per-tensor uint8 on level1's input crushes the other
    channels, so level1 is the layer that must stay float."""
    network = copy.deepcopy(tiny_network)
    with torch.no_grad():
        bn = network.base.level0[1]
        bn.weight[0] *= 1000.0
        bn.bias[0] *= 1000.0
        network.base.level1[0].weight[:, 0] /= 1000.0
    return network


def test_the_search_finds_a_layer_made_sensitive_on_purpose(
    tiny_network, calib_dir, tmp_path, photo_paths
):
    fragile = export_tiny(
        network_with_a_fragile_activation(tiny_network),
        tmp_path / "fragile.onnx",
        dynamic_batch=True,
    )
    np.testing.assert_allclose(  # the float function did not change
        outputs_of(fragile, photo_paths)["hm"],
        outputs_of(
            export_tiny(tiny_network, tmp_path / "plain.onnx", dynamic_batch=True), photo_paths
        )["hm"],
        atol=1e-4,
    )
    # the extremes of the 3 images: the default mean of per-image extremes also clips the
    # random tiny model's other activations, and its boxes then stay too noisy in int8 for
    # the size of the step this test checks
    calibration = CalibrationConfig(str(calib_dir), 3, method="minmax")
    result = build(
        fragile,
        tmp_path / "mixed.onnx",
        BuildConfig(
            "int8-mixed",
            calibration,
            # any layer may cost what it costs (this is about the search's ranking, not
            # the default speed budget); the default SQNR preselection picks the 8 tried
            search=SearchConfig(max_drop=0.05, max_layers=4, probe_images=3, max_float_cost=1.0),
        ),
    )
    search = result.search
    assert search is not None and search.int8 < search.reference - 0.05  # int8 alone is bad
    assert search.ranked[0].node == SENSITIVE  # the most helpful layer, measured alone
    assert [layer.node for layer in search.chosen][:1] == [SENSITIVE]
    # the random tiny model's boxes stay noisy in int8 elsewhere: the fix is the big step
    assert search.final >= search.int8 + 0.3 and len(search.chosen) <= 4
    model = onnx.load(str(result.path))
    assert SENSITIVE not in int8_conv_names(model)
    recorded = result.spec.extra["float_layer_search"]
    assert recorded["all_int8"] < recorded["chosen"] and recorded["max_drop"] == 0.05
    kept = {k.node: k.reason for k in result.kept}
    assert "alone in float it raises the score" in kept[SENSITIVE]
    # level1 float reads level0's output before its quantizer, which ONNX Runtime then
    # cannot fuse into an int8 kernel: level0 is made float too, and named
    from centernet.quantize.kernels import float_fallbacks

    assert float_fallbacks(result.path, "onnxruntime") == []
    assert "feeds a layer kept float" in kept["/network/base/level0/level0.0/Conv"]


def test_the_openvino_target_follows_the_same_recipe(
    tiny_onnx_dynamic, calib_dir, tmp_path, photo_paths
):
    pytest.importorskip("nncf")
    from centernet.cli import main
    from centernet.modelfile.spec import read_file_spec

    out = tmp_path / "mixed.xml"
    code = main(
        ["build", str(tiny_onnx_dynamic), "-o", str(out), "--precision", "int8-mixed",
         "--calib-images", str(calib_dir), "--calib-count", "3", "--probe-images", "3",
         "--mixed-max-layers", "2"]
    )  # fmt: skip
    assert code == 0 and out.with_suffix(".bin").is_file()
    spec = read_file_spec(out)
    assert spec.precision == "int8-mixed" and spec.extra["target"] == "openvino"
    kept = {k["node"]: k["reason"] for k in spec.extra["kept_float"]}
    assert set(head_output_convs(onnx.load(str(tiny_onnx_dynamic)))) <= set(kept)
    assert main(["detect", str(out), *map(str, photo_paths[:2]), "--out", str(tmp_path / "d")]) == 0


def test_the_noise_of_a_drop_is_its_spread_over_resamples_of_the_images(
    tiny_onnx_dynamic, photo_paths
):
    from centernet.modelfile.spec import load_centernet_onnx
    from centernet.quantize.config import SearchConfig
    from centernet.quantize.search_scoring import DetectionProbe, Trial
    from centernet.types import Detections

    _, spec = load_centernet_onnx(tiny_onnx_dynamic)
    probe = DetectionProbe(photo_paths, spec, SearchConfig())
    reference = probe.detections(tiny_onnx_dynamic)
    assert probe.use_as_reference(reference) == pytest.approx(1.0)
    assert probe.drop_noise(probe.reference_trial, reference) == 0.0  # the same boxes
    empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))
    found = reference.detections
    i = int(np.argmax([(d.scores >= 0.3).sum() for d in found]))
    one_lost = Trial([*found[:i], empty, *found[i + 1 :]])  # one image's boxes lost
    noise = probe.drop_noise(probe.reference_trial, one_lost)
    assert noise > 0.0  # the drop depends on how often that image is drawn
    assert probe.drop_noise(probe.reference_trial, one_lost) == noise  # a fixed seed


@pytest.fixture(scope="module")
def fragile_onnx(tiny_network, tmp_path_factory):
    return export_tiny(
        network_with_a_fragile_activation(tiny_network),
        tmp_path_factory.mktemp("fragile") / "fragile.onnx",
        dynamic_batch=True,
    )


def test_nncf_accuracy_control_reverts_a_layer_made_fragile_on_purpose(
    fragile_onnx, calib_dir, tmp_path, photo_paths
):
    """The OpenVINO target's int8-mixed: NNCF's quantize_with_accuracy_control, scored by
    the boxes against the float model's, reverts the layer int8 breaks. (Without bias
    correction: NNCF's corrects level0's bias from statistics the crushed channel skews,
    which no revert of level1 undoes.)"""
    pytest.importorskip("nncf")
    from centernet.modelfile.spec import read_file_spec
    from centernet.quantize.nncf_graph import int8_convolutions, openvino_names

    result = build(
        fragile_onnx,
        tmp_path / "mixed.xml",
        BuildConfig(
            "int8-mixed",
            CalibrationConfig(str(calib_dir), 3),
            search=SearchConfig(
                "nncf", max_drop=0.05, max_layers=4, probe_images=3, check_images=0
            ),
            nncf=NncfConfig(bias_correction="none"),
        ),
    )
    search = result.search
    assert search is not None and search.int8 < search.reference - 0.05  # int8 alone is bad
    assert SENSITIVE in [layer.node for layer in search.chosen]
    assert search.final >= search.int8 + 0.3
    import openvino as ov

    model = ov.Core().read_model(str(result.path))
    friendly = openvino_names(onnx.load(str(fragile_onnx)), model, [SENSITIVE])[SENSITIVE]
    assert friendly not in int8_convolutions(model)  # float in the saved IR
    spec = read_file_spec(result.path)
    recorded = spec.extra["float_layer_search"]
    assert recorded["method"] == "nncf" and recorded["budget_met"] == search.met
    kept = {k["node"]: k["reason"] for k in spec.extra["kept_float"]}
    assert "NNCF accuracy control" in kept[SENSITIVE]


def test_a_build_whose_budget_cannot_be_met_says_so(fragile_onnx, calib_dir, tmp_path, capsys):
    """No float layer allowed, int8 far off: the build is written, and its summary and
    ModelSpec say the budget was not met, what it reached and what it kept."""
    from centernet.cli import main
    from centernet.modelfile.spec import read_file_spec

    out = tmp_path / "mixed.onnx"
    code = main(
        ["build", str(fragile_onnx), "-o", str(out), "--precision", "int8-mixed",
         "--calib-images", str(calib_dir), "--calib-count", "3", "--probe-images", "3",
         "--check-images", "0", "--mixed-max-layers", "0", "--max-drop", "0.01"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "budget NOT met" in printed and "keeping no layer float" in printed
    recorded = read_file_spec(out).extra["float_layer_search"]
    assert recorded["budget_met"] is False and recorded["outcome"] == "not met"
    assert recorded["drop"] > 0.01 and recorded["chosen"] == recorded["all_int8"]


def test_the_search_on_an_openvino_ir_runs_on_the_ir_itself(
    tiny_onnx_dynamic, calib_dir, tmp_path
):
    """The IR's int8-mixed: the task search on NNCF's quantized model, each trial a copy
    with the chosen convolutions made float (``dequantize_convolutions``), scored in
    OpenVINO; what it keeps is float in the saved IR. (No noise floor and no budget: it
    keeps what lowers the output error, up to two layers.)"""
    pytest.importorskip("nncf")
    from centernet.quantize.kernels import openvino_int8_convolutions

    strict = SearchConfig(
        max_drop=0.0, noise_sigmas=0.0, max_layers=2, probe_images=3, check_images=0,
        max_candidates=4, max_float_cost=1.0,
    )  # fmt: skip
    result = build(
        tiny_onnx_dynamic,
        tmp_path / "mixed.xml",
        BuildConfig("int8-mixed", CalibrationConfig(str(calib_dir), 3), search=strict),
    )
    search = result.search
    assert search is not None and search.ranked and search.steps
    assert search.final_error <= search.int8_error
    runs = openvino_int8_convolutions(result.path)
    for layer in search.chosen:  # float in the saved IR, and named as the search's
        assert runs[layer.node] is False
        assert any(k.node == layer.node and "search" in k.reason for k in result.kept)
    recorded = result.spec.extra["float_layer_search"]
    assert recorded["method"] == "task" and recorded["engine"] == "openvino"


def test_the_ir_sqnr_preselection_ranks_every_candidate(tiny_onnx_dynamic, calib_dir, tmp_path):
    """The IR search's preselection reads each candidate's input and output in the float
    and the int8 model (outputs added to copies) and keeps the ``keep`` worst, against an
    SQNR computed here from the same tensors. (It once found no tensor at all, because
    added outputs are Results: every full-size search then tried no layer.)"""
    pytest.importorskip("nncf")
    import openvino as ov

    from centernet.quantize.ir_search import _conv_tensors, worst_by_sqnr
    from centernet.quantize.nncf_graph import int8_convolutions

    built = build(
        tiny_onnx_dynamic, tmp_path / "int8.xml",
        BuildConfig("int8", CalibrationConfig(str(calib_dir), 3)),
    )  # fmt: skip
    quantized = ov.Core().read_model(str(built.path))
    float_model = ov.convert_model(str(tiny_onnx_dynamic))
    candidates = sorted(n.removesuffix("/WithoutBiases") for n in int8_convolutions(quantized))
    assert len(candidates) > 3
    batch = np.random.default_rng(0).standard_normal((1, 3, *TINY_SIZE)).astype(np.float32)
    tensors = _conv_tensors(quantized, candidates, batch)
    assert set(tensors) == set(candidates)
    reference = _conv_tensors(float_model, candidates, batch)

    def sqnr(got, want):
        return 10 * np.log10(np.mean(want.astype(np.float64) ** 2)
                             / np.mean((got.astype(np.float64) - want) ** 2))  # fmt: skip

    drops = {}
    for name in candidates:
        (f_in, f_out), (q_in, q_out) = reference[name], tensors[name]
        in_db = 60.0 if f_in is None else min(sqnr(q_in, f_in), 60.0)
        drops[name] = in_db - sqnr(q_out, f_out)
    worst = sorted(candidates, key=lambda n: -drops[n])[:3]
    chosen = worst_by_sqnr(float_model, quantized, batch, candidates, 3)
    assert sorted(chosen) == sorted(worst)


def test_a_layer_beyond_the_speed_budget_is_never_tried(fragile_onnx, calib_dir, tmp_path):
    """The fragile layer does more than 0.01 % of the work: with that budget the search
    cannot keep it float, and says the budget was not met rather than slowing the build."""
    from centernet.quantize.cost import convolution_macs

    macs = convolution_macs(onnx.load(str(fragile_onnx)), (128, 128))
    assert macs[SENSITIVE] / sum(macs.values()) > 1e-4
    cheap = SearchConfig(
        max_drop=0.05, max_layers=4, probe_images=3, max_candidates=0, max_float_cost=1e-4
    )
    result = build(
        fragile_onnx,
        tmp_path / "mixed.onnx",
        BuildConfig("int8-mixed", CalibrationConfig(str(calib_dir), 3), search=cheap),
    )
    assert SENSITIVE not in [layer.node for layer in result.search.ranked]
    assert SENSITIVE not in {k.node for k in result.kept}
