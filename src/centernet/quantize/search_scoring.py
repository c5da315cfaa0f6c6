"""How the int8-mixed layer search scores a build: its boxes on pre-processed calibration
images (``DetectionProbe``), COCO AP against the float model's boxes or real annotations
(``datasets.coco_scoring``, the package's one COCO scoring), the bootstrap noise of a
drop, and ``output_error``, the continuous distance of a build's maps to the float
model's."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from centernet.datasets.coco import annotation_entry, detections_to_coco
from centernet.datasets.coco_scoring import coco_evaluate
from centernet.engines.base import EngineConfig
from centernet.errors import CenterNetError, ImageReadError, MissingDependencyError
from centernet.quantize.calibration import preprocess_config_for
from centernet.quantize.config import SearchConfig
from centernet.runtime.images import read_image
from centernet.runtime.postprocess import PostprocessConfig, postprocess
from centernet.runtime.preprocess import preprocess_into
from centernet.types import Detections, Letterbox, ModelSpec

#: Resamples behind a drop's sampling noise (``drop_noise``).
BOOTSTRAP_ROUNDS = 50


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
        engine: str = "onnxruntime",
        engine_config: EngineConfig | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.engine = engine  # what runs the trials: the engine the build is laid out for
        self.engine_config = engine_config
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

    def detections(self, model: onnx.ModelProto | Path | Any) -> Trial:
        """The model's boxes on every probe image (threshold 0, 100 per image), and its
        output maps (for ``error``). ``model``: an ONNX graph or file (run by the probe's
        engine), or an in-memory ``openvino.Model`` (compiled for the CPU in f32)."""
        from centernet.engines import open_engine
        from centernet.modelfile.spec import write_spec

        if hasattr(model, "get_ordered_ops"):
            return self.run(compiled_openvino(model), self._rows())
        with tempfile.TemporaryDirectory() as tmp:
            path = model if isinstance(model, Path) else Path(tmp) / "probe.onnx"
            if not isinstance(model, Path):
                write_spec(model, self.spec)  # the engine reads it (the trials lack it)
                onnx.save(model, str(path))
            options = self.engine_config or self._trial_options(Path(tmp))
            engine = open_engine(path, self.engine, options)
            trial = self.run(engine, engine.batch_size or PROBE_BATCH)
            del engine
        return trial

    def _rows(self) -> int:
        return PROBE_BATCH if self.spec.dynamic_batch else int(self.spec.batch)

    def _trial_options(self, tmp: Path) -> EngineConfig:
        """A trial model is compiled once: OpenVINO's cache goes with it."""
        if self.engine == "openvino":
            return EngineConfig(cache_dir=str(tmp / "cache"))
        return EngineConfig()

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
    paths: list[Path], spec: ModelSpec, search: SearchConfig, engine: str = "onnxruntime"
) -> tuple[DetectionProbe, DetectionProbe | None]:
    """The search's two sets of calibration images: the first ``probe_images`` to pick
    layers on, the next ``check_images`` to judge the choice on (None when the calibration
    set has no images left over: the choice is then judged on the probe images). Trials
    run on ``engine``."""
    probe = DetectionProbe(paths[: search.probe_images], spec, search, engine)
    rest = paths[search.probe_images : search.probe_images + search.check_images]
    if not rest:
        return probe, None
    try:
        check = DetectionProbe(rest, spec, replace(search, probe_images=len(rest)), engine)
        return probe, check
    except CenterNetError:  # none of them readable
        return probe, None


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
            annotations.append(annotation_entry(len(annotations) + 1, image_id, box, int(cls)))
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
                entries.append(annotation_entry(len(entries) + 1, index, box, class_of[category]))
    return {
        "images": [{"id": i, "width": 1, "height": 1} for i in range(len(names))],
        "annotations": entries,
        "categories": [{"id": c} for c in range(spec.num_classes)],
    }


def _coco_ap(ground_truth: dict, detections: list[Detections]) -> float:
    """AP@[.5:.95] of ``detections`` (image ``i`` is ``ground_truth``'s image ``i``)."""
    results = [
        entry
        for image_id, found in enumerate(detections)
        for entry in detections_to_coco(found, None, image_id=image_id, rounded=False)
    ]
    if not ground_truth["annotations"] or not results:
        return 0.0
    try:
        return max(coco_evaluate(ground_truth, results)["AP"], 0.0)
    except MissingDependencyError:
        raise MissingDependencyError(
            "pycocotools (for the int8-mixed layer search)", "eval"
        ) from None


def compiled_openvino(model: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``model`` (an ``openvino.Model``) compiled for the CPU in f32 (never bf16: the float
    layers are the reference), as a function batch -> named outputs."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": ov.Type.f32})
    outputs = list(compiled.outputs)

    def infer(batch: np.ndarray) -> dict[str, np.ndarray]:
        result = compiled(batch)
        return {port.get_any_name(): np.asarray(result[port]) for port in outputs}

    return infer
