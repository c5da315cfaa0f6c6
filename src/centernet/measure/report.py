"""Accuracy and speed of several builds side by side: report.md, report.json, report.png.

For each model: COCO AP/AP50 on annotated images, and images/s at each batch size both
network-only (random input, the engine alone) and end to end (files to Detections through
the pipelined Detector). A PyTorch eager fp32 baseline (a checkpoint) is measured in the
same run, so that speed-ups are ratios taken on the same machine at the same time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from centernet.datasets.coco import load_annotations
from centernet.engines import EngineConfig, open_engine
from centernet.measure.bench import Timing, time_end_to_end, time_network
from centernet.measure.evaluate import evaluate_detector
from centernet.measure.machine import describe_machine
from centernet.progress import Progress, counted
from centernet.runtime.detector import Detector


@dataclass(frozen=True)
class ReportConfig:
    batches: tuple[int, ...] = (1, 4, 8)
    iterations: int = 10
    warmup: int = 2
    limit: int | None = None  # annotated images scored (first N by id)
    e2e_images: int = 32  # images timed end to end, per batch size
    # the torch baseline end to end too (its network-only speed is what ratios use)
    baseline_end_to_end: bool = True
    baseline_batches: tuple[int, ...] | None = None  # batches the baseline is timed at
    engine: str = "auto"
    threads: int | None = None
    device: str = "cpu"
    precision: str | None = None  # run-time precision of the models (not the torch baseline)


@dataclass
class ModelRow:
    name: str
    precision: str
    engine: str
    ap: float
    ap50: float
    network: dict[int, Timing] = field(default_factory=dict)
    e2e: dict[int, float] = field(default_factory=dict)
    baseline: bool = False


@dataclass
class Report:
    rows: list[ModelRow]
    config: ReportConfig
    machine: str = field(default_factory=describe_machine)
    # seconds per stage of the run that made the report (``centernet demo`` fills it)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # what the run that made the report chose differently from the defaults, and why
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> ModelRow | None:
        return next((r for r in self.rows if r.baseline), None)

    def accuracy_table(self) -> str:
        lines = ["| model | precision | engine | AP | AP50 |", "|---|---|---|---|---|"]
        lines += [
            f"| {r.name} | {r.precision} | {r.engine} | {r.ap:.4f} | {r.ap50:.4f} |"
            for r in self.rows
        ]
        return "\n".join(lines)

    def throughput_table(self) -> str:
        batches = self.config.batches
        head = "| model | precision | engine | " + " | ".join(
            f"b{b} network | b{b} end-to-end | b{b} e2e / network" for b in batches
        )
        base = self.baseline
        if base is not None:
            head += f" | b{batches[0]} network vs torch eager fp32"
        lines = [head + " |", "|---" * (head.count("|")) + "|"]
        for r in self.rows:
            cells = []
            for b in batches:
                net = f"{r.network[b].images_per_s:.2f}" if b in r.network else "-"
                e2e = f"{r.e2e[b]:.2f}" if b in r.e2e else "-"
                share = (
                    f"{r.e2e[b] / r.network[b].images_per_s:.0%}"
                    if b in r.e2e and b in r.network
                    else "-"
                )
                cells += [net, e2e, share]
            line = f"| {r.name} | {r.precision} | {r.engine} | " + " | ".join(cells)
            if base is not None:
                b = batches[0]
                ratio = (
                    r.network[b].images_per_s / base.network[b].images_per_s
                    if b in r.network and b in base.network
                    else float("nan")
                )
                line += f" | {ratio:.2f}x"
            lines.append(line + " |")
        return "\n".join(lines)

    def stage_table(self) -> str:
        total = sum(self.stage_seconds.values())
        lines = ["| stage | seconds | share |", "|---|---|---|"]
        lines += [
            f"| {stage} | {seconds:.1f} | {seconds / total:.0%} |"
            for stage, seconds in self.stage_seconds.items()
        ]
        return "\n".join([*lines, f"| total | {total:.1f} | 100% |"])

    def markdown(self) -> str:
        baseline_e2e = "" if self.config.baseline_end_to_end else (
            " The torch baseline is timed network-only (the ratios use that)."
        )
        text = (
            f"# CenterNet report\n\nMachine: {self.machine}. Images/s are medians of "
            f"{self.config.iterations} runs after {self.config.warmup} warm-up runs "
            f"(network-only, random input) and wall time over {self.config.e2e_images} files "
            f"(end-to-end).{baseline_e2e}\n\n## Accuracy (COCO)\n\n"
            f"{self.accuracy_table()}\n\n## Throughput (images/s)\n\n{self.throughput_table()}\n"
        )
        if self.notes:
            text += "\n## How this run was made\n\n" + "".join(f"- {n}\n" for n in self.notes)
        if self.stage_seconds:
            text += f"\n## Where the time went\n\n{self.stage_table()}\n"
        return text

    def to_json(self) -> dict:
        return {
            "machine": self.machine,
            "config": {k: v for k, v in self.config.__dict__.items()},
            "stage_seconds": self.stage_seconds,
            "notes": self.notes,
            "models": [
                {
                    "name": r.name,
                    "precision": r.precision,
                    "engine": r.engine,
                    "baseline": r.baseline,
                    "AP": r.ap,
                    "AP50": r.ap50,
                    "network": {b: t.to_dict() for b, t in r.network.items()},
                    "end_to_end_images_per_s": r.e2e,
                }
                for r in self.rows
            ],
        }


def measure_model(
    model: str | Path,
    images_dir: str | Path,
    annotation_file: str | Path,
    config: ReportConfig,
    engine: str | None = None,
    name: str | None = None,
    baseline: bool = False,
    input_size: tuple[int, int] | None = None,
    progress: Progress | None = None,
) -> ModelRow:
    """AP and throughput of one model file (``input_size``: a checkpoint's, for torch).

    ``progress`` hears every stage (AP, then network and end-to-end timing per batch).
    """
    options = EngineConfig(
        threads=config.threads,
        device=config.device,
        input_size=input_size,
        precision=None if baseline else config.precision,
    )
    opened = open_engine(model, engine or config.engine, options)
    annotations = load_annotations(annotation_file)
    name = name or Path(model).name
    images = annotations.images[: config.limit] if config.limit else annotations.images
    outcome = evaluate_detector(
        Detector(opened, batch_size=1 if opened.batch_size is None else None),
        annotations,
        images_dir,
        config.limit,
        progress=lambda stream: counted(stream, f"{name}: AP", len(images), progress),
    )
    row = ModelRow(
        name=name,
        precision=_precision_label(opened),
        engine=opened.name,
        ap=outcome.stats["AP"],
        ap50=outcome.stats["AP50"],
        baseline=baseline,
    )
    paths = [str(Path(images_dir) / im.file_name) for im in images]
    batches = config.batches
    if baseline and config.baseline_batches is not None:
        batches = config.baseline_batches
    for batch in batches:
        if opened.batch_size not in (None, batch):
            continue  # a static-batch build runs its own batch only
        row.network[batch] = time_network(
            opened,
            batch,
            config.iterations,
            config.warmup,
            progress=_staged(progress, f"{name}: network, batch {batch}"),
        )
        if baseline and not config.baseline_end_to_end:
            continue
        count = max(config.e2e_images, 2 * batch)
        work = (paths * (count // max(1, len(paths)) + 1))[:count]
        row.e2e[batch] = time_end_to_end(
            Detector(opened, batch_size=batch),
            work,
            warmup=batch,
            progress=_staged(progress, f"{name}: end to end, batch {batch}"),
        )
    return row


def _precision_label(engine) -> str:
    """The build's precision, and the run-time one where it differs ("fp32, run in bf16")."""
    arithmetic = getattr(engine, "inference_precision", "fp32")
    built = engine.spec.precision
    return built if arithmetic == "fp32" else f"{built}, run in {arithmetic}"


def _staged(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    """A (done, total) callback reporting to ``progress`` under ``stage``."""
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def make_report(
    models: list[str | Path],
    images_dir: str | Path,
    annotation_file: str | Path,
    config: ReportConfig = ReportConfig(),
    baseline: str | Path | None = None,
    progress: Progress | None = None,
) -> Report:
    """Measure the baseline checkpoint (torch eager) first, then every model."""
    rows = []
    if baseline is not None:
        rows.append(
            measure_model(
                baseline,
                images_dir,
                annotation_file,
                config,
                engine="torch",
                name=f"{Path(baseline).name} (baseline)",
                baseline=True,
                input_size=_input_size_of(models),
                progress=progress,
            )
        )
    for model in models:
        rows.append(measure_model(model, images_dir, annotation_file, config, progress=progress))
    return Report(rows, config)


def _input_size_of(models: list[str | Path]) -> tuple[int, int] | None:
    """The fix_res input size of the first ONNX or OpenVINO IR model: the baseline must run
    at it too."""
    from centernet.modelfile.spec import read_file_spec

    for model in models:
        if Path(model).suffix in (".onnx", ".xml"):
            return tuple(read_file_spec(model).input_size)  # type: ignore[return-value]
    return None  # the checkpoint's own
