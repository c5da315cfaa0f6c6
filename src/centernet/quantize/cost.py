"""What each convolution costs: multiply-adds at the model's input size, from the weight
shapes and ONNX shape inference. A build reports the share of the network's convolution
work that runs in int8, and the layer search weighs a layer kept float by what it costs
(an early, high-resolution convolution costs far more than a late one)."""

from __future__ import annotations

import onnx
from onnx import shape_inference


def convolution_macs(model: onnx.ModelProto, input_size: tuple[int, int]) -> dict[str, int]:
    """Convolution (and ConvTranspose) name -> multiply-adds for one image of
    ``input_size`` (height, width)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, *input_size)):
        dim.ClearField("dim_param")
        dim.dim_value = value
    inferred = shape_inference.infer_shapes(fixed)
    shapes = {
        value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in [*inferred.graph.value_info, *inferred.graph.output]
    }
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    macs: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        kernel = _weight_shape(node.input[1], weights, producers)
        if kernel is None:
            continue
        if node.op_type == "Conv":
            out = shapes.get(node.output[0])
            if not out or len(out) != 4:
                continue
            per_output = kernel[1] * kernel[2] * kernel[3]  # in/groups x kh x kw
            macs[node.name] = out[1] * out[2] * out[3] * per_output
        else:  # every input position scatters in/groups -> out/groups x kh x kw
            inp = shapes.get(node.input[0]) or _input_shape(node.input[0], inferred)
            if not inp or len(inp) != 4:
                continue
            # weights (in, out/groups, kh, kw): each input value meets out/groups x kh x kw
            macs[node.name] = inp[1] * inp[2] * inp[3] * kernel[1] * kernel[2] * kernel[3]
    return macs


def _weight_shape(name: str, weights: dict, producers: dict) -> list[int] | None:
    """The weight tensor's shape, through a DequantizeLinear when the graph is QDQ."""
    if name in weights:
        return weights[name]
    node = producers.get(name)
    if node is not None and node.op_type in ("DequantizeLinear", "Identity"):
        return _weight_shape(node.input[0], weights, producers)
    return None


def _input_shape(name: str, model: onnx.ModelProto) -> list[int] | None:
    for value in model.graph.input:
        if value.name == name:
            return [d.dim_value for d in value.type.tensor_type.shape.dim]
    return None


def int8_share(macs: dict[str, int], int8: set[str]) -> float:
    """The share of the convolution multiply-adds that ``int8`` layers do."""
    total = sum(macs.values())
    return sum(v for k, v in macs.items() if k in int8) / total if total else 0.0
