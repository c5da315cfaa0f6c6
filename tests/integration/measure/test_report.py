"""bench, report and demo end to end on tiny models (timing is recorded, never asserted)."""

from __future__ import annotations

import json

import pytest

from centernet.cli import main
from centernet.demo import int8_suffix
from centernet.quantize.config import PRECISIONS, BuildConfig, CalibrationConfig
from centernet.quantize.recipe import build
from centernet.runtime.detector import Detector
from tests.helpers import write_self_annotations


def test_bench_prints_a_row_per_batch(tiny_onnx_dynamic, photo_paths, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            str(tiny_onnx_dynamic),
            "--batches",
            "1,2",
            "--iterations",
            "2",
            "--warmup",
            "1",
            "--images",
            str(photo_paths[0].parent),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| 1 |" in printed and "| 2 |" in printed and "end-to-end" in printed
    assert "end to end / network" in printed  # the share, always visible
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch"] for r in rows] == [1, 2]
    assert all(r["network"]["images_per_s"] > 0 and r["end_to_end_images_per_s"] > 0 for r in rows)
    assert all(
        r["network"]["p50_ms"] <= r["network"]["p90_ms"] <= r["network"]["p99_ms"] for r in rows
    )


def test_bench_of_a_static_batch_model_times_its_batch(tiny_onnx_batch2, capsys):
    assert main(["bench", str(tiny_onnx_batch2), "--iterations", "1", "--warmup", "0"]) == 0
    printed = capsys.readouterr().out
    assert "built for batch 2" in printed and "| 2 |" in printed and "| 1 |" not in printed


def test_report_files(tiny_onnx_dynamic, tiny_checkpoint, photo_paths, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    ann = tmp_path / "instances.json"
    write_self_annotations(Detector(tiny_onnx_dynamic), photo_paths, ann)
    images = photo_paths[0].parent
    int8 = build(
        tiny_onnx_dynamic,
        tmp_path / "int8.onnx",
        BuildConfig("int8", CalibrationConfig(str(images), 2)),
    ).path
    code = main(
        [
            "report",
            str(tiny_onnx_dynamic),
            str(int8),
            "--images",
            str(images),
            "--ann",
            str(ann),
            "--out",
            str(tmp_path / "report"),
            "--baseline",
            str(tiny_checkpoint),
            "--batches",
            "1,2",
            "--iterations",
            "1",
            "--e2e-images",
            "2",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    names = [m["name"] for m in report["models"]]
    assert names == ["tiny.pth (baseline)", tiny_onnx_dynamic.name, "int8.onnx"]
    assert [m["precision"] for m in report["models"]] == ["fp32", "fp32", "int8"]
    assert report["models"][0]["engine"] == "torch" and report["models"][0]["baseline"]
    for model in report["models"]:
        assert set(model["network"]) == {"1", "2"} and 0 <= model["AP"] <= 1
    fp32 = report["models"][1]
    assert fp32["AP"] == pytest.approx(1.0)  # scored on its own boxes (see test_cli)
    assert report["models"][0]["AP"] == pytest.approx(1.0, abs=0.02)  # torch, same weights
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Accuracy" in md and "## Throughput" in md and "vs torch eager fp32" in md
    png = (tmp_path / "report" / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_demo_end_to_end_at_reduced_size(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--out",
            str(out),
            "--image-count",
            "4",
            "--calib-count",
            "2",
            "--iterations",
            "1",
            "--e2e-images",
            "2",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    suffix = int8_suffix()  # the int8 file the default engine runs fastest here
    names = {p: f"{p}{suffix if p.startswith('int8') else '.onnx'}" for p in PRECISIONS}
    for precision, name in names.items():
        assert f"| {name} | {precision} |" in printed
    assert "Accuracy per precision" in printed and "Images/s per precision and batch" in printed
    # each long stage announces itself (int8's calibration, the torch baseline's timing);
    # the run says which search int8-mixed ran and the seconds of each stage
    qdq_calibration = "int8: calibration (minmax-ma)"
    calibration = "int8 (NNCF): calibration" if suffix == ".xml" else qdq_calibration
    for stage in (
        calibration,
        "default_model.pth (baseline): network, batch 1",
        "int8-mixed ran the quick first-run search",
        "Where the time went",
    ):
        assert stage in printed, stage
    if suffix == ".onnx":  # int8-mixed reuses int8's ranges
        assert "int8-mixed reused those activation ranges" in printed
        assert "int8-mixed: calibration" not in printed
    md = (out / "report.md").read_text()
    assert "## How this run was made" in md and "## Where the time went" in md
    seconds = json.loads((out / "report.json").read_text())["stage_seconds"]
    calibrated = f"build int8: {calibration.split(': ', 1)[-1]}"  # grouped under its step
    assert seconds[calibrated] > 0 and "export default_model.pth" in seconds
    # which set each AP is on, and what the bundled model can label
    assert "this demo's 4 held-out synthetic images" in printed and "300 held-out" in printed
    assert "knows only its 5 synthetic shapes" in printed
    assert {p.name for p in (out / "models").iterdir()} >= set(names.values())
    assert (out / "report.md").exists() and (out / "report.png").exists()
    annotated = sorted(p.name for p in (out / "annotated").iterdir())
    assert len(annotated) == 4 + 4  # the synthetic images and the bundled photos
    report = json.loads((out / "report.json").read_text())
    fp32 = next(m for m in report["models"] if m["precision"] == "fp32" and not m["baseline"])
    baseline = next(m for m in report["models"] if m["baseline"])
    assert abs(fp32["AP"] - baseline["AP"]) < 0.02  # the export scores like the checkpoint
