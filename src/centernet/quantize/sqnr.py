"""Per-layer signal-to-quantization-noise ratio of a QDQ build against its float model:
the quick search's candidate preselection (``max_candidates``) and the older int8-mixed
rule (``method="sqnr"``: the worst SQNR losses stay float)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from centernet.modelfile.spec import INPUT_NAME
from centernet.progress import Progress
from centernet.quantize.calibration import ImageCalibrationReader
from centernet.quantize.config import BuildConfig
from centernet.quantize.float_layers import KeptLayer, conv_nodes
from centernet.quantize.ort_quantize import quantize_qdq
from centernet.types import ModelSpec

#: Images the candidate preselection runs. ONNX Runtime's debug tools hold every activation
#: of both graphs for every image: about 0.75 GB per image for a full-size DLA-34 at 512, so
#: the build's 32 probe images ran a 24 GB machine out of memory. SQNR ranks layers well on
#: a few images; the task search then judges the candidates on all the probe images.
SQNR_IMAGES = 4


def activation_sqnr(
    float_path: Path, qdq_path: Path, reader: ImageCalibrationReader
) -> dict[str, float]:
    """SQNR (dB) of each activation of the QDQ model against the float model."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with tempfile.TemporaryDirectory() as tmp:
        aug_float, aug_qdq = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        modify_model_output_intermediate_tensors(str(float_path), str(aug_float))
        modify_model_output_intermediate_tensors(str(qdq_path), str(aug_qdq))
        reader.rewind()
        float_acts = collect_activations(str(aug_float), reader)
        reader.rewind()
        qdq_acts = collect_activations(str(aug_qdq), reader)
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    return {name: float(err["xmodel_err"]) for name, err in errors.items() if "xmodel_err" in err}


def rank_sensitive_convs(
    model: onnx.ModelProto, sqnr: dict[str, float], skip: set[str]
) -> list[tuple[str, float]]:
    """Convolutions by how much SQNR their output loses against their input, worst first.

    A convolution followed by its Relu has no quantized output of its own (the QDQ graph
    quantizes after the Relu): its output is read after the activation, else every such
    convolution (most of a DLA) would never be ranked."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    ranked = []
    for node in conv_nodes(model):
        output = _measured_output(node.output[0], sqnr, consumers)
        if node.name in skip or output is None:
            continue
        out_db = sqnr[output]
        in_db = sqnr.get(node.input[0], float("inf"))  # the graph input is exact
        drop = (min(in_db, 60.0) - out_db) if np.isfinite(out_db) else 0.0
        ranked.append((node.name, float(drop)))
    return sorted(ranked, key=lambda item: -item[1])


#: Element-wise activations the QDQ graph quantizes after, not before.
_ACTIVATIONS = {"Relu", "Clip", "LeakyRelu"}


def _measured_output(
    tensor: str, sqnr: dict[str, float], consumers: dict[str, list[onnx.NodeProto]]
) -> str | None:
    """``tensor``, or the output of the activation that is its only reader, whichever has a
    measured SQNR."""
    while tensor not in sqnr:
        readers = consumers.get(tensor, [])
        if len(readers) != 1 or readers[0].op_type not in _ACTIVATIONS:
            return None
        tensor = readers[0].output[0]
    return tensor


def worst_by_sqnr(
    prepared_path: Path,
    qdq_path: Path,
    paths: list[Path],
    spec: ModelSpec,
    batch: int,
    candidates: list[str],
    keep: int,
    progress: Progress | None,
) -> list[str]:
    """The ``keep`` candidates whose output loses the most SQNR in the int8 build against
    their input (``activation_sqnr``: one pass of each graph on the first ``SQNR_IMAGES``
    of ``paths``), in graph order."""
    stage = "int8-mixed: per-layer SQNR (choosing the candidates)"
    paths = paths[: max(batch, SQNR_IMAGES - SQNR_IMAGES % batch)]
    reader = ImageCalibrationReader(paths, spec, batch, INPUT_NAME, progress, stage)
    sqnr = activation_sqnr(prepared_path, qdq_path, reader)
    allowed = set(candidates)
    ranked = rank_sensitive_convs(onnx.load(str(prepared_path)), sqnr, set())
    worst = [name for name, _ in ranked if name in allowed][:keep]
    return [name for name in candidates if name in worst]


def choose_float_layers_by_sqnr(
    prepared_path: Path,
    workdir: Path,
    spec: ModelSpec,
    paths: list[Path],
    batch: int,
    already: list[str],
    config: BuildConfig,
    progress: Progress | None = None,
) -> list[KeptLayer]:
    """The older int8-mixed rule: each convolution's SQNR loss in a trial int8 build; the
    worst (above ``search.min_drop_db``, at most ``search.max_layers``) stay float."""
    assert config.calibration is not None
    search = config.search
    probe_count = min(8, search.probe_images)
    probe = paths[: max(batch, probe_count - probe_count % batch)]
    trial = workdir / "trial.onnx"
    stage = "int8-mixed: trial int8 calibration"
    reader = ImageCalibrationReader(paths, spec, batch, INPUT_NAME, progress, stage)
    quantize_qdq(prepared_path, trial, reader, config.calibration, already)
    stage = "int8-mixed: per-layer SQNR (float, int8)"
    reader = ImageCalibrationReader(probe, spec, batch, INPUT_NAME, progress, stage)
    sqnr = activation_sqnr(prepared_path, trial, reader)
    ranked = rank_sensitive_convs(onnx.load(str(prepared_path)), sqnr, set(already))
    chosen = [(n, d) for n, d in ranked if d >= search.min_drop_db][: search.max_layers]
    return [KeptLayer(n, f"int8 costs {d:.1f} dB of SQNR at its output") for n, d in chosen]
