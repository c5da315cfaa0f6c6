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

import contextlib
import io
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from centernet.build.calibration import preprocess_config_for
from centernet.engines.base import EngineOptions
from centernet.errors import CenterNetError, ImageReadError, MissingDependencyError
from centernet.progress import Progress
from centernet.runtime.images import read_image
from centernet.runtime.postprocess import PostprocessConfig, postprocess
from centernet.runtime.preprocess import preprocess_into
from centernet.types import Detections, Letterbox, ModelSpec

#: Resamples behind a drop's sampling noise (``drop_noise``).
BOOTSTRAP_ROUNDS = 50


@dataclass(frozen=True)
class SearchConfig:
    """How hard the search tries, and against what."""

    max_drop: float = 0.002  # allowed drop of the score (AP points / 100) against float
    max_layers: int = 6  # never more than this many extra float layers
    probe_images: int = 32  # calibration images the candidates are picked on
    check_images: int = 64  # further calibration images the build is judged on
    pseudo_gt_threshold: float = 0.3  # float boxes at or above this are the reference
    annotations: str | None = None  # COCO instances.json of the calibration images
    # "within noise": a drop of at most this many of its bootstrap standard deviations
    noise_sigmas: float = 2.0
    min_error_cut: float = 0.02  # share of int8's output error a kept layer must remove
    engine: str = "onnxruntime"  # what runs the trials (the engine the build is meant for)
    # None: every int8 convolution is a candidate (one trial each). N: only the N whose
    # output loses the most SQNR in the int8 build (one pass of the float and the int8
    # graph) are tried: a quicker search that can miss a layer this proxy ranks low
    max_candidates: int | None = None


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


@dataclass
class Trial:
    """A model's boxes on the probe images and the output maps they came from."""

    detections: list[Detections]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # hm, hm_max, wh, reg


class DetectionProbe:
    """Pre-processed probe images; scores a model file by its boxes on them."""

    def __init__(
        self,
        paths: Sequence[Path],
        spec: ModelSpec,
        config: SearchConfig,
        engine_options: EngineOptions | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.engine_options = engine_options
        preprocess = preprocess_config_for(spec)
        self.tensors: list[np.ndarray] = []
        self.boxes: list[Letterbox] = []
        self.names: list[str] = []
        for path in paths[: config.probe_images]:
            try:
                image = read_image(path)
            except ImageReadError:
                continue  # the calibration reader reports unreadable files
            tensor, box = preprocess_into(image, preprocess)
            self.tensors.append(tensor)
            self.boxes.append(box)
            self.names.append(Path(path).name)
        if not self.tensors:
            raise CenterNetError("no readable probe images among the calibration images")
        self.postprocess = PostprocessConfig(max_dets=100, threshold=0.0)
        self._ground_truth = None
        self._reference = 0.0
        self._reference_outputs: dict[str, np.ndarray] | None = None
        self.reference_trial: Trial | None = None

    def detections(self, model: onnx.ModelProto | Path) -> Trial:
        """The model's boxes on every probe image (threshold 0, 100 per image), and its
        output maps (for ``error``)."""
        from centernet.engines import open_engine
        from centernet.modelfile.spec import write_spec

        with tempfile.TemporaryDirectory() as tmp:
            path = model if isinstance(model, Path) else Path(tmp) / "probe.onnx"
            if not isinstance(model, Path):
                write_spec(model, self.spec)  # the engine reads it (the trials lack it)
                onnx.save(model, str(path))
            options = self.engine_options or EngineOptions(cache_dir=str(Path(tmp) / "cache"))
            engine = open_engine(path, self.config.engine, options)
            trial = self.run(engine, engine.batch_size or PROBE_BATCH)
            del engine
        return trial

    def run(
        self,
        infer: Callable[[np.ndarray], dict[str, np.ndarray]],
        rows: int,
        indices: Sequence[int] | None = None,
    ) -> Trial:
        """Boxes and maps of ``infer`` (a batch of ``rows`` images -> named outputs) on the
        probe images ``indices`` (all by default), in that order."""
        chosen = list(range(len(self.tensors))) if indices is None else list(indices)
        found: list[Detections] = []
        maps: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(chosen), rows):
            part = chosen[start : start + rows]
            batch = np.zeros((rows, *self.tensors[0].shape), np.float32)
            batch[: len(part)] = np.stack([self.tensors[i] for i in part])
            outputs = infer(batch)
            found += postprocess(outputs, [self.boxes[i] for i in part], self.postprocess)
            for name in ERROR_OUTPUTS:
                if name in outputs:
                    maps.setdefault(name, []).append(outputs[name][: len(part)])
        return Trial(found, {name: np.concatenate(parts) for name, parts in maps.items()})

    def error(self, trial: Trial) -> float:
        """``output_error`` of a trial against the float model's maps (``use_as_reference``)."""
        assert self._reference_outputs is not None, "use_as_reference first"
        if "hm" not in self._reference_outputs or "hm" not in trial.outputs:
            return 0.0  # a top-K export has no maps: the search ranks by AP alone
        return output_error(trial.outputs, self._reference_outputs, self.config.pseudo_gt_threshold)

    def use_as_reference(self, float_trial: Trial) -> float:
        """Fix the ground truth (annotations, else the float boxes) and the float maps;
        the float score."""
        self._ground_truth = (
            _annotated_ground_truth(self.config.annotations, self.names, self.spec)
            if self.config.annotations
            else _pseudo_ground_truth(float_trial.detections, self.config.pseudo_gt_threshold)
        )
        self._reference_outputs = float_trial.outputs
        self.reference_trial = Trial(float_trial.detections)  # boxes only: maps are big
        self._reference = self.score(float_trial)
        return self._reference

    def drop_noise(self, reference: Trial, trial: Trial, rounds: int = BOOTSTRAP_ROUNDS) -> float:
        """Standard deviation of ``score(reference) - score(trial)`` over bootstrap
        resamples of the probe images (fixed seed): the sampling noise of a drop measured
        on these images."""
        assert self._ground_truth is not None, "use_as_reference first"
        rng = np.random.default_rng(0)
        count = len(reference.detections)
        drops = []
        for _ in range(rounds):
            sample = rng.integers(0, count, count)
            truth = _resampled(self._ground_truth, sample)
            drops.append(
                _coco_ap(truth, [reference.detections[i] for i in sample])
                - _coco_ap(truth, [trial.detections[i] for i in sample])
            )
        return float(np.std(drops))

    def score(self, trial: Trial | list[Detections], indices: Sequence[int] | None = None) -> float:
        """COCO AP@[.5:.95] of a trial's boxes against the reference; with ``indices``, the
        trial holds only those probe images (in that order) and is scored on them alone."""
        assert self._ground_truth is not None, "use_as_reference first"
        found = trial.detections if isinstance(trial, Trial) else trial
        truth = self._ground_truth if indices is None else _subset(self._ground_truth, indices)
        return _coco_ap(truth, found)

    @property
    def metric(self) -> str:
        if self.config.annotations:
            return "AP on the calibration annotations"
        return f"AP against the float model's boxes scoring >= {self.config.pseudo_gt_threshold:g}"


def search_probes(
    paths: list[Path], spec: ModelSpec, search: SearchConfig
) -> tuple[DetectionProbe, DetectionProbe | None]:
    """The search's two sets of calibration images: the first ``probe_images`` to pick
    layers on, the next ``check_images`` to judge the choice on (None when the calibration
    set has no images left over: the choice is then judged on the probe images)."""
    probe = DetectionProbe(paths[: search.probe_images], spec, search)
    rest = paths[search.probe_images : search.probe_images + search.check_images]
    if not rest:
        return probe, None
    try:
        return probe, DetectionProbe(rest, spec, replace(search, probe_images=len(rest)))
    except CenterNetError:  # none of them readable
        return probe, None


def search_float_layers(
    probe: DetectionProbe,
    float_model: onnx.ModelProto,
    qdq_model: onnx.ModelProto,
    candidates: Sequence[str],
    make_float: Callable[[onnx.ModelProto, onnx.ModelProto, Sequence[str]], onnx.ModelProto],
    progress: Progress | None = None,
    check: DetectionProbe | None = None,
    reference_model: onnx.ModelProto | None = None,
) -> SearchResult:
    """The fewest ``candidates`` to keep float for the build to be within ``max_drop``,
    picked on ``probe``'s images and judged on ``check``'s (``probe``'s when None).

    ``float_model`` gives the float weights of a layer made float; ``reference_model``
    (default: the same) the boxes to agree with, e.g. the model before fine-tuning.
    """
    config = probe.config
    judge = check or probe
    truth = float_model if reference_model is None else reference_model
    result = SearchResult(probe.metric, 0.0, 0.0, 0.0, max_drop=config.max_drop)
    result.noise_sigmas = config.noise_sigmas
    result.reference = probe.use_as_reference(probe.detections(truth))
    int8_trial = probe.detections(qdq_model)
    result.int8 = result.final = probe.score(int8_trial)
    result.int8_error = result.final_error = probe.error(int8_trial)
    judged_reference = judge.reference_trial
    judged = int8_trial
    if check is not None:
        result.check_images = len(check.tensors)
        result.check_reference = check.use_as_reference(check.detections(truth))
        judged_reference = check.reference_trial
        judged = check.detections(qdq_model)
        result.check_int8 = result.check_final = check.score(judged)
        result.check_int8_error = result.check_final_error = check.error(judged)
    result.noise_sd = judge.drop_noise(judged_reference, judged)
    if result.drop <= config.max_drop:
        result.outcome = INT8_HOLDS
        return result
    if result.drop <= config.noise_sigmas * result.noise_sd:
        result.outcome = WITHIN_NOISE
        return result
    result.outcome = NOT_MET
    if config.max_layers <= 0:
        return result
    result.ranked = _rank(probe, float_model, qdq_model, candidates, make_float,
                          result.int8, result.int8_error, progress)  # fmt: skip
    del int8_trial, judged
    chosen: list[LayerGain] = []
    least = config.min_error_cut * result.int8_error
    stage = "int8-mixed: adding float layers (greedy, cumulative)"
    for done, layer in enumerate(result.ranked):
        if len(chosen) >= config.max_layers:
            break
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
        result.final, result.final_error = step.score, step.error
        judged = trial
        if check is not None:
            judged = check.detections(trial_model)
            step.check = result.check_final = check.score(judged)
            result.check_final_error = check.error(judged)
        result.noise_sd = judge.drop_noise(judged_reference, judged)
        if result.drop <= config.max_drop:
            result.outcome = MET
            break
        if result.drop <= config.noise_sigmas * result.noise_sd:
            result.outcome = WITHIN_NOISE
            break
    if progress:
        progress(stage, len(result.ranked), len(result.ranked))
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


#: Images per trial batch when the model takes any batch size.
PROBE_BATCH = 4

#: Outputs whose distance to the float model's is the search's continuous measure.
ERROR_OUTPUTS = ("hm", "hm_max", "wh", "reg")


def output_error(
    outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], threshold: float
) -> float:
    """How far a build's maps are from the float model's, as a sum of normalised squared
    errors: the heatmap everywhere, sizes and offsets where the float model has a peak
    (the only cells the decode reads them at: local maxima scoring >= ``threshold``, else
    each image's best cell). 0 for the float model itself; scale-free across outputs."""
    hm = reference["hm"]
    error = _nmse(outputs["hm"], hm)
    peaks = (hm >= threshold) & (hm == reference.get("hm_max", hm))
    peaks = peaks.any(axis=1)  # (N, H, W): a peak of any class
    if not peaks.any():
        flat = hm.max(axis=1).reshape(len(hm), -1).argmax(axis=1)
        peaks = np.zeros(peaks.shape, bool)
        peaks.reshape(len(hm), -1)[np.arange(len(hm)), flat] = True
    for name in ("wh", "reg"):
        if name in reference and name in outputs:
            at = np.moveaxis(reference[name], 1, -1)[peaks]
            error += _nmse(np.moveaxis(outputs[name], 1, -1)[peaks], at)
    return float(error)


def _nmse(got: np.ndarray, want: np.ndarray) -> float:
    power = float(np.mean(np.square(want, dtype=np.float64)))
    diff = float(np.mean(np.square(got.astype(np.float64) - want)))
    return diff / power if power > 0 else diff


#: Boxes per image taken as the reference when no float box reaches the threshold (an
#: untrained model, or a threshold above the model's scores).
FALLBACK_TOP_K = 10


def _pseudo_ground_truth(detections: list[Detections], threshold: float) -> dict:
    if not any(len(found) and found.scores[0] >= threshold for found in detections):
        threshold = -1.0  # nothing reaches it: each image's top boxes instead
    images, annotations = [], []
    for image_id, found in enumerate(detections):
        images.append({"id": image_id, "width": 1, "height": 1})
        for rank, (box, score, cls) in enumerate(zip(found.xyxy, found.scores, found.class_ids)):
            if score < threshold or (threshold < 0 and rank >= FALLBACK_TOP_K):
                break  # sorted by score
            annotations.append(_box_entry(len(annotations) + 1, image_id, box, int(cls)))
    classes = {a["category_id"] for a in annotations} | {0}
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c} for c in sorted(classes)],
    }


def _subset(ground_truth: dict, indices: Sequence[int]) -> dict:
    """The ground truth of the images ``indices``, renumbered 0.. in that order."""
    position = {old: new for new, old in enumerate(indices)}
    return {
        "images": [{"id": new, "width": 1, "height": 1} for new in range(len(position))],
        "annotations": [
            {**entry, "image_id": position[entry["image_id"]]}
            for entry in ground_truth["annotations"]
            if entry["image_id"] in position
        ],
        "categories": ground_truth["categories"],
    }


def _resampled(ground_truth: dict, sample: Sequence[int]) -> dict:
    """The ground truth of the images ``sample`` (repeats allowed), renumbered 0.."""
    by_image: dict[int, list[dict]] = {}
    for entry in ground_truth["annotations"]:
        by_image.setdefault(entry["image_id"], []).append(entry)
    annotations = [
        {**entry, "image_id": new}
        for new, old in enumerate(sample)
        for entry in by_image.get(int(old), [])
    ]
    for number, entry in enumerate(annotations, start=1):
        entry["id"] = number
    return {
        "images": [{"id": new, "width": 1, "height": 1} for new in range(len(sample))],
        "annotations": annotations,
        "categories": ground_truth["categories"],
    }


def _annotated_ground_truth(path: str, names: list[str], spec: ModelSpec) -> dict:
    """The annotations of the probe images, with categories as the model's class index."""
    from centernet.datasets.coco import category_ids_for, load_annotations

    annotations = load_annotations(path)
    by_name = {image.file_name: image for image in annotations.images}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise CenterNetError(
            f"{path} does not annotate {len(missing)} calibration images (e.g. {missing[0]})"
        )
    class_of = {
        cid: index for index, cid in enumerate(category_ids_for(spec.class_names, annotations))
    }
    entries = []
    for index, name in enumerate(names):
        for (x, y, w, h), category in annotations.boxes.get(by_name[name].id, []):
            if category in class_of:
                box = (x, y, x + w, y + h)
                entries.append(_box_entry(len(entries) + 1, index, box, class_of[category]))
    return {
        "images": [{"id": i, "width": 1, "height": 1} for i in range(len(names))],
        "annotations": entries,
        "categories": [{"id": c} for c in range(spec.num_classes)],
    }


def _box_entry(ann_id: int, image_id: int, box: Sequence[float], cls: int) -> dict:
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cls,
        "bbox": [x0, y0, w, h],
        "area": w * h,
        "iscrowd": 0,
    }


def _coco_ap(ground_truth: dict, detections: list[Detections]) -> float:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise MissingDependencyError(
            "pycocotools (for the int8-mixed layer search)", "eval"
        ) from None
    results = [
        {
            "image_id": image_id,
            "category_id": int(cls),
            "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
            "score": float(score),
        }
        for image_id, found in enumerate(detections)
        for box, score, cls in zip(found.xyxy, found.scores, found.class_ids)
    ]
    if not ground_truth["annotations"] or not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = ground_truth
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(float(evaluator.stats[0]), 0.0)


def describe_search(found: SearchResult, search: SearchConfig, method: str = "task") -> dict:
    """What the ModelSpec records about an int8-mixed search (``float_layer_search``)."""
    return {
        **found.summary(),
        "method": method,
        "min_error_cut": search.min_error_cut,
        "probe_images": search.probe_images,
        "check_images": search.check_images,
        "engine": "openvino" if method == "nncf" else search.engine,
    }
