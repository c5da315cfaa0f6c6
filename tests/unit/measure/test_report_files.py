"""report.png: a line per model over batch size, AP bars, a legend entry per model, no overlap."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from centernet.errors import MissingDependencyError
from centernet.measure.bench import Timing
from centernet.measure.report import ModelRow, Report, ReportConfig
from centernet.measure.report_files import plot_report, write_report

pytest.importorskip("matplotlib")


def timing(batch: int, images_per_s: float) -> Timing:
    p50 = batch * 1000.0 / images_per_s
    return Timing(batch, 10, p50, p50 * 1.1, p50 * 1.2, p50)


def row(name, precision, engine, ap, speeds, baseline=False) -> ModelRow:
    """A measured model: end to end a little below network-only, as the pipeline adds work."""
    return ModelRow(
        name,
        precision,
        engine,
        ap,
        ap + 0.2,
        {b: timing(b, v) for b, v in speeds.items()},
        {b: 0.9 * v for b, v in speeds.items()},
        baseline,
    )


def demo_rows() -> list[ModelRow]:
    return [
        row("default_model.pth (baseline)", "fp32", "torch", 0.707, {1: 2.1, 4: 2.3, 8: 2.3}, True),
        row("fp32.onnx", "fp32", "onnxruntime", 0.707, {1: 6.5, 4: 7.0, 8: 7.1}),
        row("fp16.onnx", "fp16", "onnxruntime", 0.7069, {1: 3.1, 4: 3.3, 8: 3.3}),
        row("int8.onnx", "int8", "onnxruntime", 0.69, {1: 11.8, 4: 13.5, 8: 13.9}),
        row("int8-mixed.onnx", "int8-mixed", "onnxruntime", 0.704, {1: 10.2, 4: 11.5, 8: 11.9}),
        row("int8-b4.onnx", "int8", "onnxruntime", 0.69, {4: 14.2}),  # a static-batch build
    ]


def test_write_report_draws_a_png_that_decodes(tmp_path):
    report = Report(demo_rows(), ReportConfig(batches=(1, 4, 8)), machine="x86_64, 16 CPUs")
    files = write_report(report, tmp_path / "out")
    png = tmp_path / "out" / "report.png"
    assert png in files
    image = cv2.imread(str(png))
    assert image is not None and image.ndim == 3
    height, width = image.shape[:2]
    assert 1000 <= width <= 2000 and 400 <= height <= 1200 and width > height
    assert image.std() > 20  # not a blank canvas


def test_a_line_per_model_at_its_batch_sizes(tmp_path):
    rows = demo_rows()
    figure = plot_report(rows, tmp_path / "report.png", title="CenterNet builds on testbox")
    network, e2e, accuracy = figure.axes
    assert figure.get_suptitle() == "CenterNet builds on testbox"
    assert network.get_xlabel() == e2e.get_xlabel() == "batch size"
    assert network.get_ylabel() == "images/s"
    assert accuracy.get_xlabel().startswith("COCO AP")
    assert [t.get_text() for t in network.get_xticklabels()] == ["1", "4", "8"]
    assert len(network.lines) == len(e2e.lines) == len(rows)
    for model, net_line, e2e_line in zip(rows, network.lines, e2e.lines):
        batches = sorted(model.network)
        assert list(net_line.get_xdata()) == batches == list(e2e_line.get_xdata())
        assert np.allclose(net_line.get_ydata(), [model.network[b].images_per_s for b in batches])
        assert np.allclose(e2e_line.get_ydata(), [model.e2e[b] for b in batches])
        assert net_line.get_marker() not in (None, "", "None")  # a single point shows
    static = network.lines[-1]
    assert list(static.get_xdata()) == [4]
    baseline = network.lines[0]
    assert baseline.get_linestyle() == "--" and baseline.get_color() == "black"
    assert all(line.get_linestyle() == "-" for line in network.lines[1:])
    assert len({str(line.get_color()) for line in network.lines}) == len(rows)


def test_one_legend_entry_per_model_with_its_ap(tmp_path):
    rows = demo_rows()
    figure = plot_report(rows, tmp_path / "report.png")
    (legend,) = figure.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[0] == "default_model.pth (baseline): fp32, torch, AP 0.707"
    assert texts[1] == "fp32.onnx: fp32, onnxruntime, AP 0.707"
    assert len(texts) == len(rows) and all(t.startswith(r.name + ":") for t, r in zip(texts, rows))
    accuracy = figure.axes[2]
    bars = accuracy.containers[0]
    assert [b.get_width() for b in bars] == pytest.approx([r.ap for r in rows])
    written = [t.get_text() for t in accuracy.texts]
    assert written == [f"{r.ap:.3f}" for r in rows]
    assert [t.get_text() for t in accuracy.get_yticklabels()] == [r.name for r in rows]


@pytest.mark.parametrize("count", [6, 12])
def test_legend_and_labels_do_not_cover_the_plots(tmp_path, count):
    extra = [
        row(f"build-{i}-with-a-long-descriptive-name.onnx", "int8", "openvino", 0.6, {1: i, 8: i})
        for i in range(1, count - 5)
    ]
    figure = plot_report(demo_rows()[:5] + extra, tmp_path / "report.png", title="t")
    renderer = figure.canvas.get_renderer()
    page = figure.bbox
    (legend,) = figure.legends
    box = legend.get_window_extent(renderer)
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0  # not clipped
    network, e2e, accuracy = figure.axes
    for axes in figure.axes:  # the panels with their tick labels, axis labels and titles
        assert not box.overlaps(axes.get_tightbbox(renderer))
    assert not network.get_tightbbox(renderer).overlaps(e2e.get_tightbbox(renderer))
    for label in accuracy.get_yticklabels():  # model names, between e2e and the AP bars
        extent = label.get_window_extent(renderer)
        assert not extent.overlaps(e2e.get_tightbbox(renderer)) and extent.x0 >= page.x0


def test_missing_matplotlib_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingDependencyError, match="centernet-deploy\\[eval\\]"):
        plot_report(demo_rows(), tmp_path / "report.png")
