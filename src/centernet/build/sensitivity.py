"""Which layers an int8 build must keep in float, judged by what they do to the boxes.

A per-layer signal-to-quantization-noise ratio is not the detector's loss: a layer can
keep a good SQNR and still move peaks. Here each candidate is judged by the detections:

- reference: the float model's boxes on the probe images (no labels needed: boxes scoring
  at least ``pseudo_gt_threshold`` are the ground truth), or real annotations
  (``--calib-ann``);
- score: COCO AP (pycocotools) of a build's boxes against that reference;
- search: the int8 build's drop; each candidate's gain when it alone is made float (the
  QDQ graph edited, no re-calibration); then the best candidates are made float together,
  one more at a time (each kept only if it still helps with the others float), until the
  drop is within ``max_drop`` or ``max_layers`` are float;
- noise floor: a float layer costs speed, so a candidate is worth it only if its gain is
  larger than what imperceptible input noise (``noise_grey_levels``, Gaussian, on the
  0-255 image) does to the float model's own score. Box agreement with the float model is
  a strict score (a one-pixel jitter of a box costs AP at IoU 0.95), and int8's drop is
  often spread over every layer: then no single layer beats the floor, and making six of
  them float would buy a fraction of a point for a quarter of the speed.

This is the loop NNCF's ``quantize_with_accuracy_control`` runs for OpenVINO models; for
ONNX Runtime's QDQ builds it is written here on the same principle.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class SearchConfig:
    """How hard the search tries, and against what."""

    max_drop: float = 0.002  # allowed drop of the score (AP points / 100) against float
    max_layers: int = 6  # never more than this many extra float layers
    probe_images: int = 32  # calibration images the candidates are scored on
    pseudo_gt_threshold: float = 0.3  # float boxes at or above this are the reference
    annotations: str | None = None  # COCO instances.json of the calibration images
    noise_grey_levels: float = 1.0  # input noise that sets the smallest gain worth a layer


@dataclass
class LayerGain:
    node: str
    gain: float  # score with this layer alone float, minus the all-int8 score


@dataclass
class SearchResult:
    """What the search measured and chose (recorded in the build's ModelSpec)."""

    metric: str  # "agreement AP with float boxes" or "AP on annotations"
    reference: float  # the float model's score
    int8: float  # the all-int8 build's score
    final: float  # the chosen build's score
    chosen: list[LayerGain] = field(default_factory=list)
    ranked: list[LayerGain] = field(default_factory=list)  # every candidate, best first
    noise_floor: float = 0.0  # the float model's own drop under imperceptible input noise

    @property
    def drop(self) -> float:
        return self.reference - self.final


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

    def detections(self, model: onnx.ModelProto | Path) -> list[Detections]:
        """The model's boxes on every probe image (threshold 0, 100 per image)."""
        from centernet.engines.onnxruntime import OnnxRuntimeEngine
        from centernet.modelfile.spec import write_spec

        with tempfile.TemporaryDirectory() as tmp:
            path = model if isinstance(model, Path) else Path(tmp) / "probe.onnx"
            if not isinstance(model, Path):
                write_spec(model, self.spec)  # the engine reads it (the trials lack it)
                onnx.save(model, str(path))
            engine = OnnxRuntimeEngine(path, self.engine_options or EngineOptions())
            rows = engine.batch_size or 1
            found: list[Detections] = []
            for start in range(0, len(self.tensors), rows):
                chunk = self.tensors[start : start + rows]
                batch = np.zeros((rows, *chunk[0].shape), np.float32)
                batch[: len(chunk)] = np.stack(chunk)
                outputs = engine(batch)
                found += postprocess(
                    outputs, self.boxes[start : start + len(chunk)], self.postprocess
                )
        return found

    def noise_floor(self, float_model: onnx.ModelProto | Path) -> float:
        """The float model's score drop when ``noise_grey_levels`` of Gaussian noise (on
        the 0-255 image, fixed seed) is added to the probe images: a change this small is
        invisible to a user, so no layer is made float to undo it."""
        sigma = self.config.noise_grey_levels
        if sigma <= 0:
            return 0.0
        clean = self.tensors
        rng = np.random.default_rng(0)
        per_channel = (sigma / (255.0 * np.asarray(self.spec.std, np.float32))).reshape(-1, 1, 1)
        self.tensors = [
            t + rng.standard_normal(t.shape, dtype=np.float32) * per_channel for t in clean
        ]
        try:
            noisy = self.score(self.detections(float_model))
        finally:
            self.tensors = clean
        return max(self._reference - noisy, 0.0)

    def use_as_reference(self, float_detections: list[Detections]) -> float:
        """Fix the ground truth (annotations, else the float boxes); the float score."""
        self._ground_truth = (
            _annotated_ground_truth(self.config.annotations, self.names, self.spec)
            if self.config.annotations
            else _pseudo_ground_truth(float_detections, self.config.pseudo_gt_threshold)
        )
        self._reference = self.score(float_detections)
        return self._reference

    def score(self, detections: list[Detections]) -> float:
        """COCO AP@[.5:.95] of ``detections`` against the reference."""
        assert self._ground_truth is not None, "use_as_reference first"
        return _coco_ap(self._ground_truth, detections)

    @property
    def metric(self) -> str:
        if self.config.annotations:
            return "AP on the calibration annotations"
        return f"AP against the float model's boxes scoring >= {self.config.pseudo_gt_threshold:g}"


def search_float_layers(
    probe: DetectionProbe,
    float_model: onnx.ModelProto,
    qdq_model: onnx.ModelProto,
    candidates: Sequence[str],
    make_float: Callable[[onnx.ModelProto, onnx.ModelProto, Sequence[str]], onnx.ModelProto],
    progress: Progress | None = None,
) -> SearchResult:
    """The fewest ``candidates`` to keep float for the build to be within ``max_drop``."""
    config = probe.config
    stage = "int8-mixed: scoring each layer's effect on the boxes"
    reference = probe.use_as_reference(probe.detections(float_model))
    base = probe.score(probe.detections(qdq_model))
    result = SearchResult(probe.metric, reference, base, base)
    if reference - base <= config.max_drop or config.max_layers <= 0:
        return result
    result.noise_floor = probe.noise_floor(float_model)
    for done, node in enumerate(candidates):
        if progress:
            progress(stage, done, len(candidates))
        trial = make_float(qdq_model, float_model, [node])
        result.ranked.append(LayerGain(node, probe.score(probe.detections(trial)) - base))
    if progress:
        progress(stage, len(candidates), len(candidates))
    result.ranked.sort(key=lambda layer: -layer.gain)
    worth = result.noise_floor  # never negative (noise_floor clamps it)
    helpful = [layer for layer in result.ranked if layer.gain > worth][: config.max_layers]
    chosen: list[LayerGain] = []
    for step, layer in enumerate(helpful):
        if progress:
            progress("int8-mixed: adding float layers", step, len(helpful))
        trial = make_float(qdq_model, float_model, [c.node for c in chosen] + [layer.node])
        score = probe.score(probe.detections(trial))
        if score - result.final <= worth:
            continue  # gains do not add up: with the layers already float it buys nothing
        chosen.append(layer)
        result.final = score
        if reference - result.final <= config.max_drop:
            break
    result.chosen = chosen
    return result


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
