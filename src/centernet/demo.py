"""The main job, end to end, on the bundled default model: ``centernet demo``.

Generate a held-out synthetic set and a calibration set; export the default checkpoint;
build fp32, fp16, int8 and int8-mixed; detect on the synthetic images and on the bundled
photos (annotated copies written); measure AP and images/s of every build against a
PyTorch eager fp32 baseline; write the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2

from centernet.datasets.synthetic import write_dataset
from centernet.draw import draw_detections
from centernet.errors import CenterNetError
from centernet.pipeline import Detector
from centernet.progress import Progress
from centernet.quantize import PRECISIONS, BuildConfig, CalibrationConfig, build
from centernet.report import Report, ReportConfig, make_report, write_report

DEFAULT_MODEL = "default_model.pth"
EVAL_SEED = 1000  # held out: the default model trained on seed 1, validated on seed 2
CALIB_SEED = 1001
#: The bundled model's published accuracy (README, BENCHMARKS.md), on a larger held-out set
#: than the demo's; the demo says which number is on which set.
REFERENCE_ACCURACY = "AP 0.707 on 300 held-out images (synth --seed 3, fp32)"


@dataclass(frozen=True)
class DemoConfig:
    images: int = 40  # held-out synthetic images scored and timed
    calib_images: int = 32
    photos: bool = True  # also detect on the bundled photos
    report: ReportConfig = field(default_factory=lambda: ReportConfig(iterations=8, e2e_images=24))
    threshold: float = 0.3  # for the annotated images


@dataclass
class DemoResult:
    out: Path
    report: Report
    files: list[Path]
    annotated: list[Path]
    class_names: list[str]  # what the model can label (the photos get these labels too)


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
    ``progress`` the stages inside the long ones (int8 builds, measurements)."""
    from centernet.export import ExportConfig, export_onnx
    from centernet.models.checkpoint import load_checkpoint

    def step(text: str) -> None:
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

    built = {"fp32": fp32}
    calibration = CalibrationConfig(str(out / "calibration" / "images"), config.calib_images)
    for precision in PRECISIONS:
        if precision == "fp32":
            continue
        step(f"build {precision}")
        built[precision] = models / f"{precision}.onnx"
        build(
            fp32,
            built[precision],
            BuildConfig(precision, calibration if "int8" in precision else None),
            progress,
        )

    step("detect (annotated images)")
    annotated = []
    detector = Detector(built["int8-mixed"], threshold=config.threshold, batch_size=4)
    sources = sorted((out / "synthetic" / "images").glob("*.jpg"))[:8]
    if config.photos:
        sources += bundled_photos()
    (out / "annotated").mkdir(exist_ok=True)
    for result in detector.stream([str(s) for s in sources]):
        if result.ok:
            target = out / "annotated" / Path(result.source).name
            cv2.imwrite(
                str(target), draw_detections(result.image, result.detections, spec.class_names)
            )
            annotated.append(target)

    step("report: AP and images/s per precision and batch")
    report = make_report(
        [built[p] for p in PRECISIONS],
        out / "synthetic" / "images",
        ann,
        config.report,
        baseline=checkpoint,
        progress=progress,
    )
    files = write_report(report, out)
    return DemoResult(out, report, files, annotated, list(spec.class_names))
