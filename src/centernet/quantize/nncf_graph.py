"""The converted OpenVINO model's graph, as the NNCF back end and accuracy control read
it: its convolutions and which of them are int8, the op doing an ONNX node's work, the
decode ops, and NNCF's console output kept off stdout (library code never prints)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import onnx

from centernet.errors import CenterNetError
from centernet.progress import Progress

CONVOLUTIONS = (
    "Convolution",
    "GroupConvolution",
    "ConvolutionBackpropData",
    "GroupConvolutionBackpropData",
)


@contextlib.contextmanager
def quiet_nncf() -> Iterator[None]:
    """NNCF logs to stdout and draws rich progress bars there; library code never prints,
    so both are swallowed (progress is reported through the calibration reader)."""
    logger = logging.getLogger("nncf")
    disabled = logger.disabled
    logger.disabled = True
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.disabled = disabled


def heard_outside_quiet(progress: Progress | None) -> Progress | None:
    """``progress`` called with the standard output of now, also from inside
    ``quiet_nncf`` (which swallows NNCF's): the demo prints its stage lines there."""
    if progress is None:
        return None
    stdout = sys.stdout
    report = progress

    def heard(stage: str, done: int, total: int) -> None:
        with contextlib.redirect_stdout(stdout):
            report(stage, done, total)

    return heard


def openvino_names(onnx_model: onnx.ModelProto, model: Any, nodes: Iterable[str]) -> dict[str, str]:
    """ONNX node name -> friendly name of the op doing its work in the converted model.

    Conversion keeps ONNX *tensor* names but not node names: a Conv with a bias becomes a
    Convolution ``<name>/WithoutBiases`` feeding a bias Add, which is named ``<name>`` or
    after the graph output it writes (``hm``, ``wh``), and a zero bias is folded away.
    So each node is found through the tensor it writes; a bias Add leads back to its
    convolution. A node that cannot be found is an error: silently quantizing a layer
    asked to stay float would be worse.
    """
    producer = {  # a Result repeats its input's names: not a producer
        name: op
        for op in model.get_ordered_ops()
        if op.get_type_name() != "Result"
        for out in op.outputs()
        for name in out.get_names()
    }
    onnx_nodes = {n.name: n for n in onnx_model.graph.node}
    found, missing = {}, []
    for name in nodes:
        node = onnx_nodes.get(name)
        op = producer.get(node.output[0]) if node is not None and node.output else None
        if op is not None and node.op_type in ("Conv", "ConvTranspose"):
            op = _convolution_of(op)
        if op is None:
            missing.append(name)
        else:
            found[name] = op.get_friendly_name()
    if missing:
        raise CenterNetError(
            f"{len(missing)} layer(s) to keep float are not in the OpenVINO model: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    return found


def _convolution_of(op: Any) -> Any | None:
    """The convolution behind ``op``: itself, or the input of its bias Add."""
    if op.get_type_name() in CONVOLUTIONS:
        return op
    if op.get_type_name() == "Add":
        for port in op.inputs():
            source = port.get_source_output().get_node()
            if source.get_type_name() in CONVOLUTIONS:
                return source
    return None


def decode_ops(model: Any) -> list[str]:
    """Friendly names of every Sigmoid and every op downstream of one (Results aside)."""
    pending = [op for op in model.get_ordered_ops() if op.get_type_name() == "Sigmoid"]
    seen: dict[str, None] = {}
    while pending:
        op = pending.pop()
        name = op.get_friendly_name()
        if name in seen or op.get_type_name() == "Result":
            continue
        seen[name] = None
        pending += [i.get_node() for out in op.outputs() for i in out.get_target_inputs()]
    return list(seen)


def int8_convolutions(model: Any) -> set[str]:
    """Convolutions with int8 weights: a FakeQuantize on the weights (as NNCF leaves the
    model) or an 8-bit constant behind their decompression (as a saved IR holds them).
    Weights say it better than the activation input, which may reach a convolution through
    a Concat or MaxPool after its FakeQuantize."""
    return {
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() in CONVOLUTIONS and _quantized_weights(op.input(1))
    }


def _quantized_weights(port: Any) -> bool:
    """Whether the weights arriving at ``port`` went through 8-bit quantization."""
    op = port.get_source_output().get_node()
    kind = op.get_type_name()
    if kind == "FakeQuantize":
        return True
    if kind == "Constant":
        return op.get_element_type().get_type_name() in ("i8", "u8", "i4", "u4")
    if kind in ("Convert", "Multiply", "Subtract", "Reshape"):  # weight decompression
        return _quantized_weights(op.input(0))
    return False


def dequantize_convolutions(model: Any, names: Iterable[str]) -> list[str]:
    """Make the convolutions ``names`` (friendly names, ``/WithoutBiases`` aside) of an
    NNCF-quantized model float in place: their int8 weights (a constant decompressed by
    Convert and Multiply, as NNCF leaves them) become the float constant they stand for,
    and their input skips its FakeQuantize (which other layers reading the same tensor
    keep). Returns those found."""
    import openvino as ov

    wanted = set(names)
    done = []
    for op in model.get_ordered_ops():
        name = op.get_friendly_name().removesuffix("/WithoutBiases")
        if op.get_type_name() not in CONVOLUTIONS or name not in wanted:
            continue
        weights = _decompressed(op.input(1).get_source_output().get_node())
        if weights is not None:
            op.input(1).replace_source_output(ov.opset13.constant(weights).output(0))
        source = op.input(0).get_source_output().get_node()
        if source.get_type_name() == "FakeQuantize":  # this input only: others keep it
            op.input(0).replace_source_output(source.input_value(0))
        done.append(name)
    model.validate_nodes_and_infer_types()
    return done


def _decompressed(op: Any) -> Any | None:
    """The float values behind NNCF's weight decompression ``Multiply(Convert(q) [-
    zero point], scale)``, or None when the weights are not stored that way."""
    import numpy as np

    if op.get_type_name() != "Multiply":
        return None
    values, scale = (op.input(i).get_source_output().get_node() for i in (0, 1))
    if scale.get_type_name() != "Constant":
        values, scale = scale, values
    zero_point = 0.0
    if values.get_type_name() == "Subtract":
        zero_point = values.input(1).get_source_output().get_node().get_data()
        values = values.input(0).get_source_output().get_node()
    if values.get_type_name() == "Convert":
        values = values.input(0).get_source_output().get_node()
    if values.get_type_name() != "Constant" or scale.get_type_name() != "Constant":
        return None
    raw = values.get_data().astype(np.float32)
    return ((raw - zero_point) * scale.get_data()).astype(np.float32)
