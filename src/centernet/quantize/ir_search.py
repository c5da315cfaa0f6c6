"""int8-mixed on an OpenVINO IR: the task search (``search.py``) run on the NNCF-quantized
model itself. A trial makes the chosen convolutions float in a copy of it
(``nncf_graph.dequantize_convolutions``: float weights, float input), with no
re-calibration, and scores its boxes on the calibration images in OpenVINO; so the layers
picked are the ones that matter for this quantization, not for another back end's.

Candidates are the int8 convolutions that fit the speed budget (``max_float_cost``: their
share of the multiply-adds), and of those the ``max_candidates`` whose output loses the
most SQNR against their input (one pass of the float and the int8 model on a few probe
images, every candidate's input and output read at once), so that the search stays a
few minutes on a full-size network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from centernet.progress import Progress
from centernet.quantize.config import BuildConfig
from centernet.quantize.cost import convolution_macs
from centernet.quantize.nncf_graph import CONVOLUTIONS, dequantize_convolutions, int8_convolutions
from centernet.quantize.search import SearchResult, search_float_layers
from centernet.quantize.search_scoring import search_probes
from centernet.quantize.sqnr import SQNR_IMAGES
from centernet.types import ModelSpec


def search_ir(
    quantized: Any,
    float_model: Any,
    onnx_model: onnx.ModelProto,
    spec: ModelSpec,
    paths: list[Path],
    config: BuildConfig,
    progress: Progress | None = None,
) -> tuple[Any, SearchResult]:
    """The NNCF-quantized ``quantized`` with the layers the search picks made float, and
    what the search measured (layer names as in the ONNX export)."""
    search = config.search
    probe, check = search_probes(paths, spec, search, "openvino")
    macs = convolution_macs(onnx_model, spec.input_size)
    total = sum(macs.values()) or 1
    costs = {name: value / total for name, value in macs.items()}
    int8 = {name.removesuffix("/WithoutBiases") for name in int8_convolutions(quantized)}
    order = [node.name for node in onnx_model.graph.node if node.name in int8]
    candidates = [name for name in order if costs.get(name, 0.0) <= search.max_float_cost]
    if search.max_candidates and len(candidates) > search.max_candidates:
        if progress:
            progress("int8-mixed: per-layer SQNR (choosing the candidates)", 0, 1)
        tensors = np.stack(probe.tensors[:SQNR_IMAGES])
        candidates = worst_by_sqnr(float_model, quantized, tensors, candidates,
                                   search.max_candidates)  # fmt: skip
        if progress:
            progress("int8-mixed: per-layer SQNR (choosing the candidates)", 1, 1)
    found = search_float_layers(
        probe, float_model, quantized, candidates, _made_float, progress, check, None, costs
    )
    return _made_float(quantized, float_model, [c.node for c in found.chosen]), found


def _made_float(quantized: Any, float_model: Any, names: Sequence[str]) -> Any:
    """A copy of ``quantized`` with the convolutions ``names`` float."""
    copy = quantized.clone()
    dequantize_convolutions(copy, names)
    return copy


def worst_by_sqnr(
    float_model: Any, quantized: Any, batch: np.ndarray, candidates: list[str], keep: int
) -> list[str]:
    """The ``keep`` candidates whose output loses the most SQNR in the int8 model against
    their input (both against the float model), in ``candidates``' order."""
    float_tensors = _conv_tensors(float_model, candidates, batch)
    int8_tensors = _conv_tensors(quantized, candidates, batch)
    drops = {}
    for name in candidates:
        if name not in float_tensors or name not in int8_tensors:
            continue
        (float_in, float_out), (int8_in, int8_out) = float_tensors[name], int8_tensors[name]
        in_db = 60.0 if float_in is None else min(_sqnr(int8_in, float_in), 60.0)
        drops[name] = in_db - _sqnr(int8_out, float_out)
    worst = sorted(drops, key=lambda n: -drops[n])[:keep]
    return [name for name in candidates if name in worst]


def _conv_tensors(model: Any, names: list[str], batch: np.ndarray) -> dict[str, tuple]:
    """name -> (input, output) of each named convolution on ``batch``."""
    import openvino as ov

    copy = model.clone()
    wanted = set(names)
    ports: dict[str, tuple[Any, Any]] = {}
    for op in copy.get_ordered_ops():
        name = op.get_friendly_name().removesuffix("/WithoutBiases")
        if op.get_type_name() in CONVOLUTIONS and name in wanted:
            ports[name] = (op.input(0).get_source_output(), op.output(0))
    copy.add_outputs([port for pair in ports.values() for port in pair])
    position = {_key(port): i for i, port in enumerate(copy.outputs)}  # shared ports once
    compiled = ov.Core().compile_model(copy, "CPU", {"INFERENCE_PRECISION_HINT": ov.Type.f32})
    result = compiled(batch)
    values = [np.asarray(result[compiled.output(i)]) for i in range(len(compiled.outputs))]
    return {  # a convolution reading the graph input has no input tensor: it is exact
        name: (values[position[_key(source)]] if _key(source) in position else None,
               values[position[_key(output)]])
        for name, (source, output) in ports.items()
        if _key(output) in position
    }  # fmt: skip


def _key(port: Any) -> tuple[str, int]:
    """An output port by its node and index (the same tensor read by two candidates); a
    model output (a Result) by the port it reads, so that added outputs are found."""
    node = port.get_node()
    if node.get_type_name() == "Result":
        port = node.input(0).get_source_output()
        node = port.get_node()
    return node.get_friendly_name(), port.get_index()


def _sqnr(got: np.ndarray, want: np.ndarray) -> float:
    noise = float(np.mean(np.square(got.astype(np.float64) - want)))
    power = float(np.mean(np.square(want.astype(np.float64))))
    return 10 * np.log10(power / noise) if noise > 0 and power > 0 else 100.0
