"""int8-mixed for the OpenVINO target: NNCF's accuracy-aware quantization, scored by the boxes.

``nncf.quantize_with_accuracy_control`` quantizes the model, scores the float and the int8
model with a validation function, ranks the quantized layers by what reverting each to
float does to that score, and reverts the most harmful, one group at a time (re-ranking
when a step does not help), until the drop is within ``max_drop`` or ``max_layers`` groups
are float. The validation function here is the layer search's (``search_scoring.py``): COCO
AP of the boxes against the float model's boxes on the probe calibration images
(label-free), or against their labels (``--calib-ann``), with per-image values that NNCF
uses to pick the images it ranks on. The result is then judged, as the QDQ search's is, on
the check images, calibration images NNCF never scored on; a budget not met is said so.

openvino and nncf are imported inside the functions: importing this module stays light.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from centernet.progress import Progress
from centernet.quantize.config import SearchConfig
from centernet.quantize.search import (
    INT8_HOLDS,
    MET,
    NOT_MET,
    WITHIN_NOISE,
    LayerGain,
    SearchResult,
)
from centernet.quantize.search_scoring import DetectionProbe, compiled_openvino, search_probes
from centernet.types import ModelSpec

STAGE = "int8-mixed (NNCF accuracy control)"


def quantize_with_accuracy_control(
    model: Any,
    calibration: Iterable[np.ndarray],
    calibration_size: int,
    paths: Sequence[Path],
    spec: ModelSpec,
    onnx_model: onnx.ModelProto,
    ignored: Sequence[str],
    nncf_kwargs: dict[str, Any],
    search: SearchConfig,
    progress: Progress | None = None,
) -> tuple[Any, SearchResult]:
    """The converted float ``model`` quantized by NNCF with accuracy control.

    ``calibration`` yields input batches (re-iterable), ``paths`` are the calibration
    images (the first ``probe_images`` validate, the next ``check_images`` judge),
    ``ignored`` are OpenVINO op names kept float from the start, ``nncf_kwargs`` as
    ``nncf_common.nncf_arguments`` gives them. Returns the model and what it
    measured; the layers NNCF reverted are named as in the ONNX export.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from centernet.quantize.nncf_graph import int8_convolutions

    probe, check = search_probes(list(paths), spec, search, "openvino")
    float_run = _compiled(model)
    reference = probe.use_as_reference(probe.run(float_run, _rows(spec)))
    expected = 2 + len(_convolutions(model)) + search.max_layers
    validate = _validation(probe, spec, expected, progress)
    kwargs = dict(nncf_kwargs)
    kwargs["advanced_quantization_parameters"] = kwargs.pop("advanced_parameters", None)
    with tempfile.TemporaryDirectory() as tmp:
        restorer = AdvancedAccuracyRestorerParameters(
            max_num_iterations=search.max_layers, intermediate_model_dir=tmp
        )
        with _quiet():
            quantized = nncf.quantize_with_accuracy_control(
                model,
                nncf.Dataset(calibration),
                nncf.Dataset(list(range(len(probe.tensors))), lambda i: probe.tensors[i][None]),
                validate,
                max_drop=search.max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                subset_size=calibration_size,
                ignored_scope=nncf.IgnoredScope(names=sorted(set(ignored)), validate=True),
                advanced_accuracy_restorer_parameters=restorer,
                **kwargs,
            )
        import openvino as ov

        all_int8 = ov.Core().read_model(str(Path(tmp) / "intermediate_model.xml"))
    if progress:
        progress(f"{STAGE}: validation runs", expected, expected)
    reverted = int8_convolutions(all_int8) - int8_convolutions(quantized)
    onnx_names = _onnx_names(onnx_model, model, reverted)
    int8 = probe.run(_compiled(all_int8), _rows(spec))
    final = probe.run(_compiled(quantized), _rows(spec))
    result = SearchResult(
        probe.metric,
        reference,
        probe.score(int8),
        probe.score(final),
        chosen=[LayerGain(name, float("nan")) for name in onnx_names],
        int8_error=probe.error(int8),
        final_error=probe.error(final),
        noise_sigmas=search.noise_sigmas,
        max_drop=search.max_drop,
    )
    _judge(result, check or probe, check is not None, float_run, all_int8, quantized, spec)
    return quantized, result


def _validation(
    probe: DetectionProbe, spec: ModelSpec, expected: int, progress: Progress | None
) -> Callable[[Any, Iterable[Any]], tuple[float, list[float]]]:
    """NNCF's validation function: a compiled model's score on the probe images NNCF
    names, with each image's own (NNCF ranks on them); counts its calls for progress."""
    calls = [0]

    def validate(compiled: Any, items: Iterable[Any]) -> tuple[float, list[float]]:
        indices = [int(i) for i in items]
        trial = probe.run(_named(compiled), _rows(spec), indices)
        each = [
            probe.score([found], [index]) for found, index in zip(trial.detections, indices)
        ]
        calls[0] += 1
        if progress:
            progress(f"{STAGE}: validation runs", min(calls[0], expected), expected)
        return probe.score(trial, indices), each

    return validate


def _judge(
    result: SearchResult,
    judge: DetectionProbe,
    held_out: bool,
    float_run: Any,
    all_int8: Any,
    chosen: Any,
    spec: ModelSpec,
) -> None:
    """Score the result where it is judged (the check images, else NNCF's own) and name
    the outcome as the QDQ search does."""
    if held_out:
        result.check_images = len(judge.tensors)
        result.check_reference = judge.use_as_reference(judge.run(float_run, _rows(spec)))
        int8 = judge.run(_compiled(all_int8), _rows(spec))
        result.check_int8, result.check_int8_error = judge.score(int8), judge.error(int8)
    final = judge.run(_compiled(chosen), _rows(spec))
    if held_out:
        result.check_final, result.check_final_error = judge.score(final), judge.error(final)
    assert judge.reference_trial is not None
    result.noise_sd = judge.drop_noise(judge.reference_trial, final)
    if result.drop <= result.max_drop:
        result.outcome = INT8_HOLDS if not result.chosen else MET
    elif result.drop <= result.noise_sigmas * result.noise_sd:
        result.outcome = WITHIN_NOISE
    else:
        result.outcome = NOT_MET


def _rows(spec: ModelSpec) -> int:
    from centernet.quantize.search_scoring import PROBE_BATCH

    return PROBE_BATCH if spec.dynamic_batch else int(spec.batch)


def _compiled(model: Any):
    return compiled_openvino(model)


def _named(compiled: Any):
    """An already compiled model (NNCF hands the validation function one) as a function
    batch -> named outputs."""
    outputs = list(compiled.outputs)

    def infer(batch: np.ndarray) -> dict[str, np.ndarray]:
        result = compiled(batch)
        return {port.get_any_name(): np.asarray(result[port]) for port in outputs}

    return infer


def _convolutions(model: Any) -> list[Any]:
    from centernet.quantize.nncf_graph import CONVOLUTIONS

    return [op for op in model.get_ordered_ops() if op.get_type_name() in CONVOLUTIONS]


def _onnx_names(onnx_model: onnx.ModelProto, model: Any, friendly: set[str]) -> list[str]:
    """The ONNX node names of the OpenVINO convolutions ``friendly``, in graph order."""
    from centernet.quantize.float_layers import conv_nodes
    from centernet.quantize.nncf_graph import openvino_names

    mapping = openvino_names(onnx_model, model, [n.name for n in conv_nodes(onnx_model)])
    return [name for name, op in mapping.items() if op in friendly]


def _quiet():
    from centernet.quantize.nncf_graph import quiet_nncf

    return quiet_nncf()


__all__ = ["quantize_with_accuracy_control"]
