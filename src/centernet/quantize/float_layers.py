"""Which layers of a CenterNet graph stay float in every int8 build, and how a layer is
made float again in a QDQ graph. Both back ends (ONNX QDQ in ``ort_qdq.py``, the NNCF
IR in ``nncf_ir.py``) follow these rules, so they live here, below both.

The rules: the decode (the heatmap Sigmoid and everything after it), the head outputs
(the last 1x1 convolution of each head, the hm/wh/reg logits), and, for a build laid out
for ONNX Runtime, the layers where its int8 is slower than float (the stem, ConvTranspose
up-sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from centernet.errors import CenterNetError

HEADS = ("hm", "wh", "reg")


@dataclass
class KeptLayer:
    node: str
    reason: str


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


def float_by_design(model: onnx.ModelProto, engine: str = "onnxruntime") -> list[KeptLayer]:
    """Convolutions an int8 build laid out for ``engine`` keeps in float, because int8 is
    slower there.

    ONNX Runtime: the stem (3 input channels: too short a dot product for its int8
    kernels; measured 40 ms int8 against ~10 ms float for DLA-34 at 512x512 on 2 AVX2
    cores) and the depthwise ConvTranspose up-sampling (its CPU provider has no int8
    kernel for it, so quantizing only adds QuantizeLinear/DequantizeLinear around a float
    op). OpenVINO has int8 kernels for both (NNCF quantizes them): none.
    """
    if engine == "openvino":
        return []
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


def float_layers_by_design(
    model: onnx.ModelProto,
    engine: str,
    head_outputs_float: bool = True,
    asked: tuple[str, ...] | list[str] = (),
) -> list[KeptLayer]:
    """The layers every int8 build for ``engine`` keeps float, and the head outputs unless
    ``head_outputs_float`` is off; every layer in ``asked`` (the user's) must exist."""
    kept = float_by_design(model, engine)
    if head_outputs_float:
        kept += [
            KeptLayer(h, "head output (logits): no Q/DQ on hm/wh/reg")
            for h in head_output_convs(model)
        ]
    known = {node.name for node in conv_nodes(model)}
    unknown = [name for name in asked if name not in known]
    if unknown:
        raise CenterNetError(
            f"`keep_float_layers` names no convolution of this model: {unknown[0]}"
        )
    return kept


def conv_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]


def int8_conv_names(model: onnx.ModelProto) -> set[str]:
    """Convolutions of a QDQ graph whose weights arrive through DequantizeLinear."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in conv_nodes(model) if n.input[1] in dequantized}


def head_output_convs(model: onnx.ModelProto) -> list[str]:
    """The last convolution of each head (per stack for Hourglass): the one whose output is
    the hm/wh/reg logits."""
    last: dict[str, str] = {}
    for name in head_nodes(model):  # in graph order: the last one seen per head wins
        last[name.split("/")[2]] = name  # "/network/hm/hm.2/Conv" -> "hm"
    return list(last.values())


def keep_float(
    qdq: onnx.ModelProto, float_model: onnx.ModelProto, names: list[str] | tuple[str, ...]
) -> onnx.ModelProto:
    """A copy of a QDQ model in which the convolutions ``names`` compute in float.

    Their weights and biases come back from the float model and their activation input is
    taken from before its QuantizeLinear; the calibrated ranges of every other tensor stay
    as they are, so no re-calibration is needed. Q/DQ nodes left unused are removed.
    """
    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    wanted = set(names)
    producers = {out: node for node in model.graph.node for out in node.output}
    originals = {node.name: node for node in float_model.graph.node}
    float_producers = {out: node for node in float_model.graph.node for out in node.output}
    float_weights = {init.name: init for init in float_model.graph.initializer}
    present = {init.name for init in model.graph.initializer}
    produced = set(producers)
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        if node.name in wanted:
            original = originals[node.name]
            nodes += _float_activation(node, original, producers, float_producers, produced)
            for slot in range(1, min(len(node.input), len(original.input))):
                # the quantizer may have given a DequantizeLinear output the weight's own name
                name = original.input[slot]
                restored = f"{name}_float" if name in produced else name
                node.input[slot] = restored
                if restored not in present:
                    weight = onnx.TensorProto()
                    weight.CopyFrom(float_weights[name])
                    weight.name = restored
                    model.graph.initializer.append(weight)
                    present.add(restored)
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _drop_unused(model)
    return model


def _float_activation(
    node: onnx.NodeProto,
    original: onnx.NodeProto,
    producers: dict[str, onnx.NodeProto],
    float_producers: dict[str, onnx.NodeProto],
    produced: set[str],
) -> list[onnx.NodeProto]:
    """Point ``node``'s activation input at the float tensor the float model feeds it.

    The quantizer folds a Relu into the QuantizeLinear after it (zero point 0 clamps the
    negatives) and gives the convolution before it the Relu's output name, so that name
    can hold the values before the Relu: the Relu is then re-created for this input.
    Returns the nodes to insert before ``node``.
    """
    wanted = original.input[0]
    float_producer = float_producers.get(wanted)
    producer = producers.get(wanted)
    if wanted not in produced and wanted not in float_producers:
        node.input[0] = wanted  # a graph input
        return []
    if producer is None:
        return []  # no float tensor to read: the input stays quantized
    if (
        float_producer is not None
        and float_producer.op_type == "Relu"
        and producer.op_type != "Relu"
    ):
        restored = f"{wanted}_relu_float"
        node.input[0] = restored
        if restored in produced:
            return []
        produced.add(restored)
        return [onnx.helper.make_node("Relu", [wanted], [restored], name=f"{restored}_node")]
    node.input[0] = wanted
    return []


def _drop_unused(model: onnx.ModelProto) -> None:
    """Remove nodes whose outputs nobody reads, then initializers nobody reads."""
    graph_outputs = {o.name for o in model.graph.output}
    while True:
        used = {i for node in model.graph.node for i in node.input} | graph_outputs
        dead = [n for n in model.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            model.graph.node.remove(node)
    used = {i for node in model.graph.node for i in node.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)
