"""Pictures: annotated copies of images (box, class name, score) and the report's chart."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from centernet.errors import MissingDependencyError
from centernet.types import Detections

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from centernet.report import ModelRow


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class (golden-ratio hue steps)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(
    image: np.ndarray,
    detections: Detections,
    class_names: list[str],
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Return a copy of ``image`` (BGR uint8) with the detections drawn, lowest score first.

    ``labels`` (one per box) replaces the default "class score" text, e.g. to add track ids.
    """
    canvas = image.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 1000)
    thickness = max(1, int(round(2 * scale)))
    for i in np.argsort(detections.scores, kind="stable"):
        x1, y1, x2, y2 = (int(round(v)) for v in detections.xyxy[i])
        cls = int(detections.class_ids[i])
        colour = class_colour(cls)
        name = class_names[cls] if cls < len(class_names) else str(cls)
        label = labels[i] if labels is not None else f"{name} {detections.scores[i]:.2f}"
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        top = max(y1, th + base)
        cv2.rectangle(canvas, (x1, top - th - base), (x1 + tw, top), colour, -1)
        cv2.putText(
            canvas,
            label,
            (x1, top - base),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return canvas


def plot_report(rows: Sequence[ModelRow], path: str | Path, title: str = "") -> Figure:
    """Save the report's chart to ``path`` and return it (tests inspect it).

    One glance should answer "which build, at which batch size, at what accuracy": a line
    per model over batch size (network-only and end-to-end side by side, same scale, as
    the two differ by the pre/post-processing a deployment pays), then COCO AP per model
    as labelled bars. Colours match across panels and one legend below names each model;
    the torch eager baseline is black and dashed so that speed-ups read against it.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "eval") from None
    # A bare Figure on the Agg canvas: no pyplot state, nothing to close, safe in threads.
    figure = Figure(figsize=(13, 4.6 + 0.25 * math.ceil(len(rows) / 2)), dpi=110)
    FigureCanvasAgg(figure)
    figure.set_layout_engine("constrained")
    network, e2e, accuracy = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 0.9]})
    e2e.sharey(network)
    styles = _row_styles(rows)
    labels = [
        f"{r.name}: {r.precision}, {r.engine}, AP {r.ap:.3f}"
        + (" (baseline)" if r.baseline and "baseline" not in r.name else "")
        for r in rows
    ]
    for row, style, label in zip(rows, styles, labels):
        for axes, speeds in (
            (network, {b: t.images_per_s for b, t in row.network.items()}),
            (e2e, row.e2e),
        ):
            batches = sorted(speeds)
            axes.plot(
                batches,
                [speeds[b] for b in batches],
                label=label if axes is network else "_nolegend_",
                markersize=7,
                linewidth=2,
                **style,
            )
    batches = sorted({b for r in rows for b in (*r.network, *r.e2e)})
    for axes, what in ((network, "network only"), (e2e, "end to end")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(batches, [str(b) for b in batches])
        axes.minorticks_off()
        if batches:
            axes.set_xlim(batches[0] / 1.4, batches[-1] * 1.4)
        axes.set_xlabel("batch size", fontsize=10)
        axes.set_title(f"Throughput, {what}", fontsize=11)
        axes.grid(True, alpha=0.3)
        axes.tick_params(labelsize=9)
    network.set_ylabel("images/s", fontsize=10)
    network.set_ylim(bottom=0)
    e2e.tick_params(labelleft=True)
    _accuracy_bars(accuracy, rows, styles)
    if title:
        figure.suptitle(title, fontsize=12)
    if rows:  # as many columns as the longest label allows (about 7 px a character at 9 pt)
        columns = max(1, min(3, len(rows), 1350 // (60 + 7 * max(map(len, labels)))))
        figure.legend(loc="outside lower center", ncols=columns, fontsize=9, frameon=False)
    figure.savefig(str(path))
    return figure


def _row_styles(rows: Sequence[ModelRow]) -> list[dict]:
    """Line style per row: the baseline black dashed squares; the others distinct colours."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors  # pairs: a tab10 colour, then its light shade
    palette = [c for i, c in enumerate(tab20) if i % 2 == 0 and i != 14] + [
        c for i, c in enumerate(tab20) if i % 2 == 1 and i != 15
    ]  # tab10 order first, then the light shades; the greys (14, 15) are the baseline's
    markers = "oD^vP*Xph<>"
    styles, k = [], 0
    for row in rows:
        if row.baseline:
            styles.append({"color": "black", "linestyle": "--", "marker": "s"})
        else:
            styles.append(
                {"color": palette[k % len(palette)], "linestyle": "-", "marker": markers[k % 11]}
            )
            k += 1
    return styles


def _accuracy_bars(axes, rows: Sequence[ModelRow], styles: list[dict]) -> None:
    """Horizontal COCO AP bars, first model on top, the value written at each bar's end."""
    positions = range(len(rows))
    bars = axes.barh(
        positions,
        [r.ap for r in rows],
        color=[s["color"] for s in styles],
        edgecolor="black",
        linewidth=[1.2 if r.baseline else 0 for r in rows],
        height=0.65,
    )
    for bar, row in zip(bars, rows):
        if row.baseline:
            bar.set_facecolor("0.75")
            bar.set_linestyle("--")
    axes.bar_label(bars, labels=[f"{r.ap:.3f}" for r in rows], padding=3, fontsize=9)
    axes.set_yticks(list(positions), [r.name for r in rows], fontsize=9)
    axes.invert_yaxis()
    axes.set_xlim(0, max([0.05, *(r.ap for r in rows if math.isfinite(r.ap))]) * 1.18)
    axes.set_xlabel("COCO AP (IoU .50:.95)", fontsize=10)
    axes.set_title("Accuracy", fontsize=11)
    axes.grid(True, axis="x", alpha=0.3)
    axes.tick_params(axis="x", labelsize=9)
