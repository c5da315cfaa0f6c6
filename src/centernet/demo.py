"""The main job, end to end, on the bundled default model: ``centernet demo``.

Generate a held-out synthetic set and a calibration set; export the default checkpoint;
build fp32, fp16, int8 and int8-mixed; detect on the synthetic images and on the bundled
photos (annotated copies written); measure AP and images/s of every build against a
PyTorch eager fp32 baseline; write the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import cv2

from centernet.datasets.synthetic import write_dataset
from centernet.errors import CenterNetError
from centernet.measure.report import Report, ReportConfig, make_report
from centernet.measure.report_files import write_report
from centernet.progress import Progress
from centernet.quantize.config import PRECISIONS, BuildConfig, CalibrationConfig, SearchConfig
from centernet.quantize.recipe import build
from centernet.runtime.detector import Detector
from centernet.runtime.draw import draw_detections

DEFAULT_MODEL = "default_model.pth"
EVAL_SEED = 1000  # held out: the default model trained on seed 1, validated on seed 2
CALIB_SEED = 1001
#: The bundled model's published accuracy (docs/models.md, BENCHMARKS.md), on a larger held-out set
#: than the demo's; the demo says which number is on which set.
REFERENCE_ACCURACY = "AP 0.707 on 300 held-out images (synth --seed 3, fp32)"


def first_run_report() -> ReportConfig:
    """What a first run measures: batch 1 and 4, 5 timed runs after 1 warm-up, 16 files
    end to end, the torch baseline at batch 1 network-only (the ratios use it). A fuller
    sweep is ``centernet report``'s job."""
    return ReportConfig(
        batches=(1, 4),
        iterations=5,
        warmup=1,
        e2e_images=16,
        baseline_end_to_end=False,
        baseline_batches=(1,),
    )


def first_run_search() -> SearchConfig:
    """The int8-mixed layer search of a first run: picked on 8 calibration images, judged
    on the next 8, among the 8 convolutions whose output loses the most SQNR, at most 2
    kept. ``centernet build --precision int8-mixed`` picks on 32 images and judges on 64;
    the demo says which it ran."""
    return SearchConfig(probe_images=8, check_images=8, max_layers=2, max_candidates=8)


@dataclass(frozen=True)
class DemoConfig:
    images: int = 40  # held-out synthetic images scored and timed
    calib_images: int = 16
    photos: bool = True  # also detect on the bundled photos
    report: ReportConfig = field(default_factory=first_run_report)
    search: SearchConfig = field(default_factory=first_run_search)
    threshold: float = 0.3  # for the annotated images


@dataclass
class DemoResult:
    out: Path
    report: Report
    files: list[Path]
    annotated: list[Path]
    class_names: list[str]  # what the model can label (the photos get these labels too)


class StageClock:
    """Seconds per stage of the demo: its steps, and inside the long ones (the int8
    builds, the report) the library's own progress stages, grouped so that a first run
    says where its time went."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self._step: str | None = None
        self._sub: str | None = None
        self._since = time.perf_counter()

    def step(self, name: str) -> None:
        self._close()
        self._step, self._sub = name, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        """The Progress callback: a new stage text starts a new sub-stage."""
        if stage != self._sub:
            self._close()
            self._sub = stage
        if self.progress:
            self.progress(stage, done, total)

    def finish(self) -> dict[str, float]:
        self._close()
        self._step = self._sub = None
        return dict(self.seconds)

    def _close(self) -> None:
        now = time.perf_counter()
        if self._step is not None:
            key = self._step if self._sub is None else _stage_group(self._step, self._sub)
            self.seconds[key] = self.seconds.get(key, 0.0) + now - self._since
        self._since = now


def _stage_group(step: str, stage: str) -> str:
    """Group a progress stage under its step: the report's per-model stages by kind."""
    if not step.startswith("report"):
        return f"{step}: {stage.split(': ', 1)[-1]}"
    if "(baseline)" in stage:
        return "report: torch eager baseline (AP, network)"
    kind = stage.split(": ", 1)[-1].split(",")[0]  # "AP", "network", "end to end"
    return f"report: {kind} of the builds"


def _search_note(search: SearchConfig, result) -> str:
    """The first run's int8-mixed search in words: what it ran, how it ended, what it kept."""
    found = result.search
    kept = ", ".join(k.node for k in result.kept if k.reason.startswith("search")) or "none"
    ended = "" if found is None else f"; it ended {found.outcome!r} (drop {found.drop:.4f})"
    return (
        f"int8-mixed ran the quick first-run search: picked on {search.probe_images} and "
        f"judged on {search.check_images} calibration images, among the "
        f"{search.max_candidates} convolutions with the largest int8 SQNR loss, at most "
        f"{search.max_layers} kept float{ended}; layers it kept float: {kept}. "
        "`centernet build --precision int8-mixed` picks on 32 calibration images and judges "
        "on 64."
    )


def default_model_path() -> Path:
    path = Path(str(resources.files("centernet.assets").joinpath(DEFAULT_MODEL)))
    if not path.is_file():
        raise CenterNetError(f"the bundled default model is missing ({path})")
    return path


def bundled_photos() -> list[Path]:
    folder = Path(str(resources.files("centernet.assets").joinpath("photos")))
    return sorted(folder.glob("*.jpg"))


def run_demo(
    out: str | Path,
    config: DemoConfig = DemoConfig(),
    checkpoint: str | Path | None = None,
    on_step: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Run every step into ``out``; ``on_step`` hears the name of each step as it starts,
    ``progress`` the stages inside the long ones (int8 builds, measurements). The report
    records how long each stage took (``Report.stage_seconds``)."""
    from centernet.export.onnx_graph import ExportConfig, export_onnx
    from centernet.models.checkpoint import load_checkpoint

    clock = StageClock(progress)
    progress = clock

    def step(text: str) -> None:
        clock.step(text.split(":")[0])
        if on_step:
            on_step(text)

    out = Path(out)
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(checkpoint) if checkpoint else default_model_path()

    step(f"synthetic sets: {config.images} held-out images, {config.calib_images} calibration")
    ann = write_dataset(out / "synthetic", config.images, seed=EVAL_SEED)
    write_dataset(out / "calibration", config.calib_images, seed=CALIB_SEED)

    step(f"export {checkpoint.name}")
    loaded = load_checkpoint(checkpoint)
    spec = loaded.model_spec()
    fp32 = models / "fp32.onnx"
    export_onnx(loaded.model, fp32, spec, ExportConfig(dynamic_batch=True))

    built, notes = _build_precisions(fp32, out, config, step, progress)

    step("detect (annotated images)")
    annotated = _annotate(built["int8-mixed"], out, config, spec.class_names)

    step("report: AP and images/s per precision and batch")
    report = make_report(
        [built[p] for p in PRECISIONS],
        out / "synthetic" / "images",
        ann,
        config.report,
        baseline=checkpoint,
        progress=progress,
    )
    report.stage_seconds = clock.finish()
    report.notes = notes
    files = write_report(report, out)
    return DemoResult(out, report, files, annotated, list(spec.class_names))


def int8_suffix() -> str:
    """The int8 file the engine ``auto`` runs fastest here: an OpenVINO IR where OpenVINO
    is the default engine (BENCHMARKS.md, issue 30), else a QDQ .onnx."""
    from centernet.engines import default_onnx_engine

    return ".xml" if default_onnx_engine() == "openvino" else ".onnx"


def _build_precisions(
    fp32: Path, out: Path, config: DemoConfig, step: Callable[[str], None], progress: Progress
) -> tuple[dict[str, Path], list[str]]:
    """Every precision build of the export (the builds, and notes for the report): int8
    as the file the default engine runs fastest (``int8_suffix``)."""
    models = fp32.parent
    built = {"fp32": fp32}
    suffix = int8_suffix()
    images = str(out / "calibration" / "images")
    notes = [f"int8 calibrated on {config.calib_images} synthetic images (seed {CALIB_SEED})"]
    calibration = CalibrationConfig(images, config.calib_images)
    if suffix == ".onnx":
        # int8 calibrates and writes the ranges; int8-mixed (same export, same images)
        # reuses them instead of calibrating a second time
        ranges = models / "calibration.ranges.json"
        ranges.unlink(missing_ok=True)  # a re-run may calibrate on other images
        calibration = replace(calibration, ranges_file=str(ranges))
        notes[0] += "; int8-mixed reused those activation ranges"
    notes[0] += f"; int8 builds are {'OpenVINO IRs' if suffix == '.xml' else 'QDQ .onnx'}."
    for precision in PRECISIONS:
        if precision == "fp32":
            continue
        step(f"build {precision}")
        int8 = precision.startswith("int8")
        built[precision] = models / f"{precision}{suffix if int8 else '.onnx'}"
        settings = BuildConfig(precision, calibration if int8 else None)
        if precision == "int8-mixed":
            settings = replace(settings, search=config.search)
        done = build(fp32, built[precision], settings, progress)
        if precision == "int8-mixed":
            notes.append(_search_note(config.search, done))
    return built, notes


def _annotate(model: Path, out: Path, config: DemoConfig, class_names: list[str]) -> list[Path]:
    """Annotated copies of 8 synthetic images (and the bundled photos) by ``model``."""
    annotated = []
    detector = Detector(model, threshold=config.threshold, batch_size=4)
    sources = sorted((out / "synthetic" / "images").glob("*.jpg"))[:8]
    if config.photos:
        sources += bundled_photos()
    (out / "annotated").mkdir(exist_ok=True)
    for result in detector.stream([str(s) for s in sources]):
        if result.ok:
            target = out / "annotated" / Path(result.source).name
            cv2.imwrite(str(target), draw_detections(result.image, result.detections, class_names))
            annotated.append(target)
    return annotated
