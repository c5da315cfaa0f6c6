"""The SQNR preselection ranks every convolution, also one whose output is only quantized
after its Relu (it once skipped those: most of a DLA, the layer that mattered included)."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from centernet.quantize.sqnr import rank_sensitive_convs


def _graph() -> onnx.ModelProto:
    """x -> conv_a -> Relu -> conv_b -> y, and conv_b's output also read by an Add."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv_a"),
        helper.make_node("Relu", ["a"], ["a_relu"], name="relu_a"),
        helper.make_node("Conv", ["a_relu", "w2"], ["b"], name="conv_b"),
        helper.make_node("Add", ["b", "b"], ["y"], name="add"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    weights = [
        helper.make_tensor("w1", TensorProto.FLOAT, [1, 1, 1, 1], [1.0]),
        helper.make_tensor("w2", TensorProto.FLOAT, [1, 1, 1, 1], [1.0]),
    ]
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, weights))


def test_a_convolution_quantized_after_its_relu_is_ranked_by_the_relu_output():
    sqnr = {"a_relu": 30.0, "b": 10.0}  # what the QDQ graph measures: no "a" of its own
    ranked = dict(rank_sensitive_convs(_graph(), sqnr, set()))
    assert ranked == {"conv_a": 60.0 - 30.0, "conv_b": 30.0 - 10.0}  # input x is exact


def test_an_output_with_no_measure_and_no_single_activation_is_left_out():
    ranked = dict(rank_sensitive_convs(_graph(), {"a_relu": 30.0}, set()))
    assert ranked == {"conv_a": 30.0}  # conv_b's output feeds an Add, not an activation
    assert rank_sensitive_convs(_graph(), {"a_relu": 30.0}, {"conv_a"}) == []
