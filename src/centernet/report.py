"""Accuracy and speed of several builds side by side: report.md, report.json, report.png.

For each model: COCO AP/AP50 on annotated images, and images/s at each batch size both
network-only (random input, the engine alone) and end to end (files to Detections through
the pipelined Detector). A PyTorch eager fp32 baseline (a checkpoint) is measured in the
same run, so that speed-ups are ratios taken on the same machine at the same time.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from centernet.bench import Timing, time_end_to_end, time_network
from centernet.datasets.coco import load_annotations
from centernet.engines import EngineOptions, open_engine
from centernet.evaluate import evaluate_detector
from centernet.pipeline import Detector


@dataclass(frozen=True)
class ReportConfig:
    batches: tuple[int, ...] = (1, 4, 8)
    iterations: int = 10
    warmup: int = 2
    limit: int | None = None  # annotated images scored (first N by id)
    e2e_images: int = 32  # images timed end to end, per batch size
    engine: str = "auto"
    threads: int | None = None


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
    machine: str = field(default_factory=lambda: f"{platform.machine()}, {_cpu_count()} CPUs")

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
            f"b{b} network | b{b} end-to-end" for b in batches
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
                cells += [net, e2e]
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

    def markdown(self) -> str:
        return (
            f"# CenterNet report\n\nMachine: {self.machine}. Images/s are medians of "
            f"{self.config.iterations} runs (network-only, random input) and wall time over "
            f"{self.config.e2e_images} files (end-to-end).\n\n## Accuracy (COCO)\n\n"
            f"{self.accuracy_table()}\n\n## Throughput (images/s)\n\n{self.throughput_table()}\n"
        )

    def to_json(self) -> dict:
        return {
            "machine": self.machine,
            "config": {k: v for k, v in self.config.__dict__.items()},
            "models": [
                {
                    "name": r.name,
                    "precision": r.precision,
                    "engine": r.engine,
                    "baseline": r.baseline,
                    "AP": r.ap,
                    "AP50": r.ap50,
                    "network": {
                        b: {
                            "images_per_s": t.images_per_s,
                            "p50_ms": t.p50_ms,
                            "p90_ms": t.p90_ms,
                            "p99_ms": t.p99_ms,
                        }
                        for b, t in r.network.items()
                    },
                    "end_to_end_images_per_s": r.e2e,
                }
                for r in self.rows
            ],
        }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def measure_model(
    model: str | Path,
    images_dir: str | Path,
    annotation_file: str | Path,
    config: ReportConfig,
    engine: str | None = None,
    name: str | None = None,
    baseline: bool = False,
    input_size: tuple[int, int] | None = None,
) -> ModelRow:
    """AP and throughput of one model file (``input_size``: a checkpoint's, for torch)."""
    options = EngineOptions(threads=config.threads, input_size=input_size)
    opened = open_engine(model, engine or config.engine, options)
    annotations = load_annotations(annotation_file)
    outcome = evaluate_detector(
        Detector(opened, batch_size=1 if opened.batch_size is None else None),
        annotations,
        images_dir,
        config.limit,
    )
    row = ModelRow(
        name=name or Path(model).name,
        precision=opened.spec.precision,
        engine=opened.name,
        ap=outcome.stats["AP"],
        ap50=outcome.stats["AP50"],
        baseline=baseline,
    )
    images = annotations.images[: config.limit] if config.limit else annotations.images
    paths = [str(Path(images_dir) / im.file_name) for im in images]
    for batch in config.batches:
        if opened.batch_size not in (None, batch):
            continue  # a static-batch build runs its own batch only
        row.network[batch] = time_network(opened, batch, config.iterations, config.warmup)
        count = max(config.e2e_images, 2 * batch)
        work = (paths * (count // max(1, len(paths)) + 1))[:count]
        row.e2e[batch] = time_end_to_end(Detector(opened, batch_size=batch), work, warmup=batch)
    return row


def make_report(
    models: list[str | Path],
    images_dir: str | Path,
    annotation_file: str | Path,
    config: ReportConfig = ReportConfig(),
    baseline: str | Path | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Report:
    """Measure the baseline checkpoint (torch eager) first, then every model."""
    rows = []
    if baseline is not None:
        if on_progress:
            on_progress(f"baseline {Path(baseline).name} (torch eager fp32)")
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
            )
        )
    for model in models:
        if on_progress:
            on_progress(str(model))
        rows.append(measure_model(model, images_dir, annotation_file, config))
    return Report(rows, config)


def _input_size_of(models: list[str | Path]) -> tuple[int, int] | None:
    """The fix_res input size of the first ONNX model: the baseline must run at it too."""
    from centernet.export import load_centernet_onnx

    for model in models:
        if Path(model).suffix == ".onnx":
            return tuple(load_centernet_onnx(model)[1].input_size)  # type: ignore[return-value]
    return None  # the checkpoint's own


def write_report(report: Report, out: str | Path) -> list[Path]:
    """report.md, report.json and report.png (throughput against AP) in ``out``."""
    from centernet.draw import plot_throughput_vs_ap

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, js, png = out / "report.md", out / "report.json", out / "report.png"
    md.write_text(report.markdown())
    js.write_text(json.dumps(report.to_json(), indent=2))
    points = [
        (f"{r.name} b{b}", r.ap, t.images_per_s, r.baseline)
        for r in report.rows
        for b, t in r.network.items()
    ]
    plot_throughput_vs_ap(points, png, title=f"CenterNet builds on {report.machine}")
    return [md, js, png]
