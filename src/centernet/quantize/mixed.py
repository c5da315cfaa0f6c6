"""int8-mixed on a QDQ graph, for either layout: the task search (``search.py``) picks the
convolutions to make float, trial by trial on the engine the build is laid out for, and
they are made float in the graph (``float_layers.keep_float``: no re-calibration)."""

from __future__ import annotations

from pathlib import Path

import onnx

from centernet.progress import Progress
from centernet.quantize.config import BuildConfig
from centernet.quantize.cost import convolution_macs
from centernet.quantize.float_layers import KeptLayer, int8_conv_names, keep_float
from centernet.quantize.graph import graph_order
from centernet.quantize.result import BuildResult
from centernet.quantize.search import search_float_layers, search_reason
from centernet.quantize.search_scoring import search_probes
from centernet.quantize.sqnr import worst_by_sqnr
from centernet.types import ModelSpec


def search_qdq(
    built: onnx.ModelProto,
    float_model: onnx.ModelProto,
    reference: onnx.ModelProto,
    paths: list[Path],
    spec: ModelSpec,
    batch: int,
    config: BuildConfig,
    result: BuildResult,
    progress: Progress | None,
    float_path: Path,
    qdq_path: Path,
    engine: str,
) -> onnx.ModelProto:
    """int8-mixed's task search on the QDQ graph ``built`` (saved at ``qdq_path``; its float
    model ``float_model`` at ``float_path``), trials run on ``engine``: the layers it picks
    made float. ``reference`` gives the boxes to agree with."""
    search = config.search
    probe, check = search_probes(paths, spec, search, engine)
    candidates = sorted(int8_conv_names(built), key=graph_order(built))
    macs = convolution_macs(float_model, spec.input_size)
    total = sum(macs.values()) or 1
    costs = {name: value / total for name, value in macs.items()}
    candidates = [c for c in candidates if costs.get(c, 0.0) <= search.max_float_cost]
    if search.max_candidates and len(candidates) > search.max_candidates:
        candidates = worst_by_sqnr(
            float_path, qdq_path, paths[: search.probe_images], spec, batch,
            candidates, search.max_candidates, progress,
        )  # fmt: skip
    found = search_float_layers(
        probe, float_model, built, candidates, keep_float, progress, check, reference, costs
    )
    result.search = found
    result.kept += [KeptLayer(layer.node, search_reason(layer)) for layer in found.chosen]
    return keep_float(built, float_model, [layer.node for layer in found.chosen])
