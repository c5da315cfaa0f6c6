"""Which layers an int8 build must keep in float, judged by what they do to the boxes.

A per-layer signal-to-quantization-noise ratio is not the detector's loss: a layer can
keep a good SQNR and still move peaks. Here candidates are judged at the outputs:

- reference: the float model's boxes on calibration images (no labels needed: boxes
  scoring at least ``pseudo_gt_threshold`` are the ground truth), or real annotations
  (``--calib-ann``);
- score: COCO AP (pycocotools) of a build's boxes against that reference; and the output
  error (``output_error``), a continuous measure of how far hm, wh and reg are from the
  float model's. On a full-size network int8's drop is spread over many layers: alone,
  each moves the score of 32 images by less than its sampling noise (measured: +-0.002,
  for a total drop of 0.004), but each lowers the output error measurably;
- two sets of calibration images: layers are *picked* on the probe images, and the build
  is *judged* on the check images, which the search never picks on;
- ranking: each candidate made float alone (the QDQ graph edited, no re-calibration),
  ordered by the share of int8's output error it removes;
- greedy, cumulative: the ranked layers are made float one more at a time, each kept
  only if, with those already kept, it removes at least ``min_error_cut`` of int8's
  output error on the probe images, until the drop on the check images is within
  ``max_drop``, or within noise there, or ``max_layers`` are float. "Within noise" is
  statistical: the drop is at most ``noise_sigmas`` standard deviations of itself over
  bootstrap resamples of the check images (``drop_noise``), so it cannot be told from no
  drop on those images. Layers whose error cut does not carry over to the check images
  are given back (a float layer costs speed);
- the outcome says whether the budget was met, met within noise, or not met (what was
  reached and kept): a build never stops short silently.

NNCF's ``quantize_with_accuracy_control`` runs the same kind of loop for OpenVINO models
(``accuracy_control.py``); for ONNX Runtime's QDQ builds it is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import onnx

from centernet.progress import Progress
from centernet.quantize.config import SearchConfig
from centernet.quantize.search_scoring import DetectionProbe


@dataclass
class LayerGain:
    node: str
    gain: float  # score with this layer alone float, minus the all-int8 score
    error_cut: float = 0.0  # share of int8's output error that goes when it alone is float


@dataclass
class Step:
    """One trial of the cumulative search: a layer added to those kept so far."""

    node: str
    score: float  # probe score with it and the layers kept before it float
    error: float  # probe output error, likewise
    kept: bool
    check: float | None = None  # check score once it was kept


#: How a search ended.
INT8_HOLDS = "int8 within budget"
MET = "within budget"
WITHIN_NOISE = "within noise"
NOT_MET = "not met"


@dataclass
class SearchResult:
    """What the search measured and chose (recorded in the build's ModelSpec).

    Scores on the probe images (where layers are picked) and on the check images (where
    the build is judged; the probe images again when there are none) are kept apart.
    """

    metric: str  # "agreement AP with float boxes" or "AP on annotations"
    reference: float  # the float model's score (probe images)
    int8: float  # the all-int8 build's score
    final: float  # the chosen build's score
    chosen: list[LayerGain] = field(default_factory=list)
    ranked: list[LayerGain] = field(default_factory=list)  # candidates, in trial order
    check_images: int = 0  # held-out calibration images the build was judged on
    check_reference: float = 0.0
    check_int8: float = 0.0
    check_final: float = 0.0
    int8_error: float = 0.0  # output error (probe images)
    final_error: float = 0.0
    check_int8_error: float = 0.0
    check_final_error: float = 0.0
    noise_sd: float = 0.0  # bootstrap standard deviation of the judged drop
    noise_sigmas: float = 2.0
    outcome: str = ""  # INT8_HOLDS, MET, WITHIN_NOISE or NOT_MET
    steps: list[Step] = field(default_factory=list)
    max_drop: float = 0.0

    @property
    def drop(self) -> float:
        """The chosen build's drop where it is judged: the check images, if any."""
        if self.check_images:
            return self.check_reference - self.check_final
        return self.reference - self.final

    @property
    def met(self) -> bool:
        """Within the budget (or within noise of it) on the images it is judged on."""
        return self.outcome in (INT8_HOLDS, MET, WITHIN_NOISE)

    def judged(self) -> tuple[float, float, float]:
        """Float, all-int8 and chosen scores where the build is judged."""
        if self.check_images:
            return self.check_reference, self.check_int8, self.check_final
        return self.reference, self.int8, self.final

    def summary(self) -> dict:
        """What the ModelSpec records."""
        reference, int8, final = self.judged()
        return {
            "metric": self.metric,
            "outcome": self.outcome,
            "budget_met": self.met,
            "max_drop": self.max_drop,
            "judged_on": f"{self.check_images} held-out calibration images"
            if self.check_images
            else "the probe images (no held-out calibration images)",
            "float": round(reference, 4),
            "all_int8": round(int8, 4),
            "chosen": round(final, 4),
            "drop": round(self.drop, 4),
            "drop_sd": round(self.noise_sd, 4),
            "noise_sigmas": self.noise_sigmas,
            "output_error": {
                "all_int8": round(self.check_int8_error or self.int8_error, 5),
                "chosen": round(self.check_final_error or self.final_error, 5),
            },
            "probe": {
                "float": round(self.reference, 4),
                "all_int8": round(self.int8, 4),
                "chosen": round(self.final, 4),
            },
            "layers_tried": len(self.steps),
        }


def search_float_layers(
    probe: DetectionProbe,
    float_model: onnx.ModelProto,
    qdq_model: onnx.ModelProto,
    candidates: Sequence[str],
    make_float: Callable[[onnx.ModelProto, onnx.ModelProto, Sequence[str]], onnx.ModelProto],
    progress: Progress | None = None,
    check: DetectionProbe | None = None,
    reference_model: onnx.ModelProto | None = None,
    costs: dict[str, float] | None = None,
) -> SearchResult:
    """The fewest ``candidates`` to keep float for the build to be within ``max_drop``,
    picked on ``probe``'s images and judged on ``check``'s (``probe``'s when None).

    ``float_model`` gives the float weights of a layer made float; ``reference_model``
    (default: the same) the boxes to agree with, e.g. the model before fine-tuning.
    ``costs`` (layer -> its share of the network's multiply-adds) bounds what is kept
    float to ``max_float_cost`` in all: a layer that does not fit is never tried.
    """
    config = probe.config
    truth = float_model if reference_model is None else reference_model
    result = _score_all_int8(probe, check, truth, qdq_model, progress)
    if result.outcome != NOT_MET or config.max_layers <= 0:
        return result
    if costs is not None:
        candidates = [c for c in candidates if costs.get(c, 0.0) <= config.max_float_cost]
    result.ranked = _rank(probe, float_model, qdq_model, candidates, make_float,
                          result.int8, result.int8_error, progress)  # fmt: skip
    chosen = _add_float_layers(
        probe, check, float_model, qdq_model, make_float, result, progress, costs or {}
    )
    _, int8_score, final_score = result.judged()
    no_carry_over = check is not None and (
        result.check_int8_error - result.check_final_error
        < config.min_error_cut * result.check_int8_error
    )
    if chosen and (no_carry_over or final_score < int8_score):
        # what the probe images liked did not carry over to unseen ones, or the boxes got
        # worse where the build is judged: not worth the speed
        chosen = []
        result.final, result.final_error = result.int8, result.int8_error
        result.check_final, result.check_final_error = result.check_int8, result.check_int8_error
        result.outcome = NOT_MET
    result.chosen = chosen
    return result


def _score_all_int8(
    probe: DetectionProbe,
    check: DetectionProbe | None,
    truth: onnx.ModelProto,
    qdq_model: onnx.ModelProto,
    progress: Progress | None = None,
) -> SearchResult:
    """The float reference and the all-int8 build on the probe (and check) images, and
    whether int8 alone is already within the budget or its noise."""
    config = probe.config
    judge = check or probe
    stage = "int8-mixed: float and all-int8 boxes on the probe and check images"
    steps = 2 if check is None else 4
    if progress:
        progress(stage, 0, steps)
    result = SearchResult(probe.metric, 0.0, 0.0, 0.0, max_drop=config.max_drop)
    result.noise_sigmas = config.noise_sigmas
    result.reference = probe.use_as_reference(probe.detections(truth))
    if progress:
        progress(stage, 1, steps)
    int8_trial = probe.detections(qdq_model)
    result.int8 = result.final = probe.score(int8_trial)
    result.int8_error = result.final_error = probe.error(int8_trial)
    judged = int8_trial
    if check is not None:
        result.check_images = len(check.tensors)
        if progress:
            progress(stage, 2, steps)
        result.check_reference = check.use_as_reference(check.detections(truth))
        if progress:
            progress(stage, 3, steps)
        judged = check.detections(qdq_model)
        result.check_int8 = result.check_final = check.score(judged)
        result.check_int8_error = result.check_final_error = check.error(judged)
    assert judge.reference_trial is not None
    result.noise_sd = judge.drop_noise(judge.reference_trial, judged)
    result.outcome = _outcome(result, INT8_HOLDS) or NOT_MET
    if progress:
        progress(stage, steps, steps)
    return result


def _outcome(result: SearchResult, met: str) -> str | None:
    """``met`` within the budget, WITHIN_NOISE within its noise, else None."""
    if result.drop <= result.max_drop:
        return met
    if result.drop <= result.noise_sigmas * result.noise_sd:
        return WITHIN_NOISE
    return None


def _add_float_layers(
    probe: DetectionProbe,
    check: DetectionProbe | None,
    float_model: onnx.ModelProto,
    qdq_model: onnx.ModelProto,
    make_float: Callable[[onnx.ModelProto, onnx.ModelProto, Sequence[str]], onnx.ModelProto],
    result: SearchResult,
    progress: Progress | None,
    costs: dict[str, float],
) -> list[LayerGain]:
    """The greedy, cumulative step: the ranked layers made float one more at a time, each
    kept if it still removes enough output error and fits the cost budget, until the
    budget (or its noise) is met on the judged images or ``max_layers`` are float.
    Updates ``result`` as it goes."""
    config = probe.config
    judge = check or probe
    assert judge.reference_trial is not None
    chosen: list[LayerGain] = []
    spent = 0.0
    least = config.min_error_cut * result.int8_error
    stage = "int8-mixed: adding float layers (greedy, cumulative)"
    for done, layer in enumerate(result.ranked):
        if len(chosen) >= config.max_layers:
            break
        if spent + costs.get(layer.node, 0.0) > config.max_float_cost:
            continue  # it would cost more speed than the budget leaves
        if progress:
            progress(stage, done, len(result.ranked))
        trial_model = make_float(qdq_model, float_model, [c.node for c in chosen] + [layer.node])
        trial = probe.detections(trial_model)
        step = Step(layer.node, probe.score(trial), probe.error(trial), kept=False)
        result.steps.append(step)
        step.kept = result.final_error - step.error >= least
        if not step.kept:
            continue  # with the layers already float it removes too little error
        chosen.append(layer)
        spent += costs.get(layer.node, 0.0)
        result.final, result.final_error = step.score, step.error
        judged = trial
        if check is not None:
            judged = check.detections(trial_model)
            step.check = result.check_final = check.score(judged)
            result.check_final_error = check.error(judged)
        result.noise_sd = judge.drop_noise(judge.reference_trial, judged)
        outcome = _outcome(result, MET)
        if outcome is not None:
            result.outcome = outcome
            break
    if progress:
        progress(stage, len(result.ranked), len(result.ranked))
    return chosen


def _rank(
    probe: DetectionProbe,
    float_model: onnx.ModelProto,
    qdq_model: onnx.ModelProto,
    candidates: Sequence[str],
    make_float: Callable[[onnx.ModelProto, onnx.ModelProto, Sequence[str]], onnx.ModelProto],
    base: float,
    base_error: float,
    progress: Progress | None,
) -> list[LayerGain]:
    """Every candidate made float alone; those that lower the output error, in the order
    the greedy search tries them: the largest share of int8's output error first."""
    stage = "int8-mixed: scoring each layer's effect on the boxes"
    measured = []
    for done, node in enumerate(candidates):
        if progress:
            progress(stage, done, len(candidates))
        trial = probe.detections(make_float(qdq_model, float_model, [node]))
        cut = (base_error - probe.error(trial)) / base_error if base_error > 0 else 0.0
        measured.append(LayerGain(node, probe.score(trial) - base, cut))
    if progress:
        progress(stage, len(candidates), len(candidates))
    return sorted((m for m in measured if m.error_cut > 0), key=lambda m: -m.error_cut)


def describe_search(
    found: SearchResult, search: SearchConfig, engine: str, method: str = "task"
) -> dict:
    """What the ModelSpec records about an int8-mixed search (``float_layer_search``);
    ``engine`` ran its trials."""
    return {
        **found.summary(),
        "method": method,
        "min_error_cut": search.min_error_cut,
        "probe_images": search.probe_images,
        "check_images": search.check_images,
        "engine": engine,
    }


def search_reason(layer: LayerGain) -> str:
    """Why the search keeps ``layer`` float, in words (the build summary, the ModelSpec)."""
    points = layer.gain * 100
    if points >= 0:
        score = f"raises the score by {points:.2f} AP points and"
    else:  # kept for the error it removes; the score moved within its noise
        score = f"lowers the score by {-points:.2f} AP points but"
    return f"search: alone in float it {score} removes {layer.error_cut:.0%} of int8's output error"
