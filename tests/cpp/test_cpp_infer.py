"""centernet_infer (cpp/) against the Python `centernet detect` on the same files and model:
the same boxes (each corner within 0.5 px, score within 1e-4, same class and file), the
same "skipped" lines for bad files and the same exit codes; fix_res and keep_res, batch 1
and 4, both output modes, a static batch, int8/fp16 builds and an OpenVINO IR.

Python runs its default engine (ONNX Runtime) unless a test says otherwise; against
Python's OpenVINO engine, the runtime the C++ program links, detections.json is expected
byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from centernet.cli import main
from tests.helpers import export_tiny, write_bad_and_odd_images

THRESHOLD = 0.1  # the tiny random model scores ~0.1-0.3
BOX_TOLERANCE_PX = 0.5
SCORE_TOLERANCE = 1e-4
SKIPPED = "centernet: skipped "


@dataclass
class Run:
    code: int
    entries: list[dict]
    skipped: list[str]  # the "centernet: skipped ..." lines, in order
    stdout: str
    stderr: str


def run_cpp(binary: Path, model: Path, inputs: list[str], out: Path, *args: str) -> Run:
    done = subprocess.run(
        [str(binary), str(model), *inputs, "--out", str(out), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return _finish(done.returncode, out, done.stdout, done.stderr)


def run_python(capsys, model: Path, inputs: list[str], out: Path, *args: str) -> Run:
    capsys.readouterr()
    code = main(["detect", str(model), *inputs, "--out", str(out), *args])
    captured = capsys.readouterr()
    return _finish(code, out, captured.out, captured.err)


def _finish(code: int, out: Path, stdout: str, stderr: str) -> Run:
    path = out / "detections.json"
    entries = json.loads(path.read_text()) if path.is_file() else []
    skipped = [line for line in stderr.splitlines() if line.startswith(SKIPPED)]
    return Run(code, entries, skipped, stdout, stderr)


@dataclass
class Comparison:
    boxes: int = 0  # boxes matched within the tolerances
    max_box_px: float = 0.0
    max_score: float = 0.0
    boundary: int = 0  # boxes in one list only, all scoring at the cut-off


def _corners(entry: dict) -> list[float]:
    x, y, w, h = entry["bbox"]
    return [x, y, x + w, y + h]


def compare_detections(
    cpp: list[dict], python: list[dict], threshold: float, max_dets: int = 100
) -> Comparison:
    """Match every box of one run to a box of the other (same file and class, corners within
    0.5 px, score within 1e-4). Two engines' float rounding may only swap which of the boxes
    scoring at the cut-off (the threshold, or the K-th score of a full list) make it in."""
    result = Comparison()
    by_file: dict[str, tuple[list[dict], list[dict]]] = {}
    for entry in cpp:
        by_file.setdefault(entry["file_name"], ([], []))[0].append(entry)
    for entry in python:
        by_file.setdefault(entry["file_name"], ([], []))[1].append(entry)
    for name, (ours, theirs) in by_file.items():
        for boxes in (ours, theirs):
            scores = [e["score"] for e in boxes]
            assert scores == sorted(scores, reverse=True), f"{name}: not by descending score"
        cut = max(
            [threshold] + [min(e["score"] for e in b) for b in (ours, theirs) if len(b) == max_dets]
        )
        left = list(theirs)
        for entry in ours:
            candidates = [
                other
                for other in left
                if other["category_id"] == entry["category_id"]
                and abs(other["score"] - entry["score"]) <= SCORE_TOLERANCE
                and all(
                    abs(a - b) <= BOX_TOLERANCE_PX for a, b in zip(_corners(entry), _corners(other))
                )
            ]
            if not candidates:
                assert entry["score"] <= cut + SCORE_TOLERANCE, f"{name}: C++ only: {entry}"
                result.boundary += 1
                continue
            other = min(candidates, key=lambda o: abs(o["score"] - entry["score"]))
            left.remove(other)
            result.boxes += 1
            result.max_score = max(result.max_score, abs(other["score"] - entry["score"]))
            result.max_box_px = max(
                result.max_box_px,
                max(abs(a - b) for a, b in zip(_corners(entry), _corners(other))),
            )
        for other in left:
            assert other["score"] <= cut + SCORE_TOLERANCE, f"{name}: Python only: {other}"
            result.boundary += 1
    return result


def assert_same_run(cpp: Run, python: Run, threshold: float = THRESHOLD) -> Comparison:
    assert cpp.code == python.code, (cpp.stderr, python.stderr)
    assert cpp.skipped == python.skipped
    comparison = compare_detections(cpp.entries, python.entries, threshold)
    assert comparison.boxes > 0, "no boxes to compare: lower the threshold"
    assert comparison.boundary <= comparison.boxes // 20, comparison
    print(f"compared {comparison}")  # shown with pytest -s
    return comparison


@pytest.fixture(scope="module")
def inputs(photo_paths, tmp_path_factory) -> list[str]:
    """The photos, awkward but readable files, bad files and a missing one: every outcome."""
    folder = tmp_path_factory.mktemp("inputs")
    for photo in photo_paths:
        shutil.copy(photo, folder / photo.name)
    write_bad_and_odd_images(folder, photo_paths[0])
    return [str(folder), str(folder / "missing.jpg")]


@pytest.fixture(scope="module")
def tiny_topk(tiny_network, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny_topk.onnx"
    return export_tiny(
        tiny_network, path, dynamic_batch=True, dynamic_size=True, output_mode="topk"
    )


@pytest.mark.parametrize("batch", ["1", "4"])
@pytest.mark.parametrize("resolution", ["fix_res", "keep_res"])
def test_same_boxes_as_python(
    cpp_binary, tiny_onnx_dynamic, inputs, tmp_path, capsys, resolution, batch
):
    args = ["--threshold", str(THRESHOLD), "--batch", batch]
    if resolution == "keep_res":
        args.append("--keep-res")
    cpp = run_cpp(cpp_binary, tiny_onnx_dynamic, inputs, tmp_path / "cpp", *args)
    python = run_python(capsys, tiny_onnx_dynamic, inputs, tmp_path / "py", *args)
    assert cpp.code == 1  # the bad files
    assert [line.split(": ", 2)[-1] for line in cpp.skipped] == [  # folder order, then missing
        "empty file",
        "not a decodable image",
        "truncated JPEG (no end-of-image marker after its last scan)",
        "no such file",
    ]
    assert_same_run(cpp, python)


@pytest.mark.parametrize("batch", ["1", "4"])
def test_topk_mode_same_boxes_as_python(cpp_binary, tiny_topk, inputs, tmp_path, capsys, batch):
    args = ["--threshold", str(THRESHOLD), "--batch", batch]
    cpp = run_cpp(cpp_binary, tiny_topk, inputs, tmp_path / "cpp", *args)
    python = run_python(capsys, tiny_topk, inputs, tmp_path / "py", *args)
    assert_same_run(cpp, python)


def test_static_batch_pads_a_short_batch(
    cpp_binary, tiny_onnx_batch2, photo_paths, tmp_path, capsys
):
    """Three images on a batch-2 model: the second batch is one image and a zero row."""
    images = [str(p) for p in photo_paths[:3]]
    args = ["--threshold", str(THRESHOLD)]
    cpp = run_cpp(cpp_binary, tiny_onnx_batch2, images, tmp_path / "cpp", *args)
    python = run_python(capsys, tiny_onnx_batch2, images, tmp_path / "py", *args)
    assert cpp.code == python.code == 0
    assert_same_run(cpp, python)
    single = run_cpp(cpp_binary, tiny_onnx_batch2, images[2:], tmp_path / "one", *args)
    assert [e for e in cpp.entries if e["file_name"] == photo_paths[2].name] == single.entries


@pytest.mark.parametrize("extra", [[], ["--keep-res"]], ids=["fix_res", "keep_res"])
def test_json_identical_to_python_on_openvino(
    cpp_binary, tiny_onnx_dynamic, inputs, tmp_path, capsys, extra
):
    """Same runtime, same input tensors, same decode, same rounding: the same bytes."""
    args = ["--threshold", "0", "--batch", "4", *extra]
    run_cpp(cpp_binary, tiny_onnx_dynamic, inputs, tmp_path / "cpp", *args)
    run_python(capsys, tiny_onnx_dynamic, inputs, tmp_path / "py", *args, "--engine", "openvino")
    ours = (tmp_path / "cpp" / "detections.json").read_text()
    theirs = (tmp_path / "py" / "detections.json").read_text()
    assert len(json.loads(ours)) > 100
    assert ours == theirs


@pytest.fixture(scope="module")
def builds(tiny_onnx_dynamic, photo_paths, tmp_path_factory) -> dict[str, Path]:
    from centernet.quantize.config import BuildConfig, CalibrationConfig
    from centernet.quantize.recipe import build

    folder = tmp_path_factory.mktemp("calib")
    for photo in photo_paths[:2]:
        shutil.copy(photo, folder / photo.name)
    out = tmp_path_factory.mktemp("builds")
    calibration = CalibrationConfig(str(folder), count=2)
    return {
        precision: build(
            tiny_onnx_dynamic,
            out / f"{precision}.onnx",
            BuildConfig(precision, calibration if precision.startswith("int8") else None),
        ).path
        for precision in ("fp16", "int8")
    }


@pytest.mark.parametrize(
    "precision,engine",
    [("fp16", "onnxruntime"), ("int8", "openvino")],
)
def test_builds_same_boxes_as_python(
    cpp_binary, builds, inputs, tmp_path, capsys, precision, engine
):
    """fp16 and QDQ int8 builds. int8 against Python on the same runtime: ONNX Runtime's and
    OpenVINO's int8 kernels round differently (scores differ by ~1e-3 on this model), and
    the tolerance is about the client, not the runtime."""
    args = ["--threshold", str(THRESHOLD), "--batch", "4"]
    cpp = run_cpp(cpp_binary, builds[precision], inputs, tmp_path / "cpp", *args)
    python = run_python(
        capsys, builds[precision], inputs, tmp_path / "py", *args, "--engine", engine
    )
    assert_same_run(cpp, python)


def test_openvino_ir(cpp_binary, tiny_onnx_dynamic, inputs, tmp_path, capsys):
    """An IR converted from the export, its spec in the runtime info as `build` writes it."""
    ov = pytest.importorskip("openvino")
    from centernet.modelfile.openvino_ir import write_ir_spec
    from centernet.modelfile.spec import read_file_spec

    model = ov.convert_model(str(tiny_onnx_dynamic))
    write_ir_spec(model, read_file_spec(tiny_onnx_dynamic))
    xml = tmp_path / "tiny.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    args = ["--threshold", str(THRESHOLD)]
    cpp = run_cpp(cpp_binary, xml, inputs, tmp_path / "cpp", *args)
    python = run_python(capsys, tiny_onnx_dynamic, inputs, tmp_path / "py", *args)
    assert_same_run(cpp, python)


def test_save_images_names_as_python(cpp_binary, tiny_onnx_dynamic, inputs, tmp_path, capsys):
    args = ["--threshold", str(THRESHOLD), "--save-images"]
    run_cpp(cpp_binary, tiny_onnx_dynamic, inputs, tmp_path / "cpp", *args)
    run_python(capsys, tiny_onnx_dynamic, inputs, tmp_path / "py", *args)
    ours = sorted(p.name for p in (tmp_path / "cpp" / "images").iterdir())
    assert ours == sorted(p.name for p in (tmp_path / "py" / "images").iterdir())
    assert len(ours) == 8  # 4 photos + 4 awkward but readable files
    assert all((tmp_path / "cpp" / "images" / name).stat().st_size > 0 for name in ours)


def test_unmatched_folders_and_globs(cpp_binary, tiny_onnx_dynamic, photo_paths, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    items = [str(empty), str(tmp_path / "*.png"), str(photo_paths[0])]
    cpp = run_cpp(cpp_binary, tiny_onnx_dynamic, items, tmp_path / "cpp")
    python = run_python(capsys, tiny_onnx_dynamic, items, tmp_path / "py")
    assert cpp.code == python.code == 1
    assert cpp.skipped == python.skipped and len(cpp.skipped) == 2


def _fatal_cases(tmp_path: Path, tiny_onnx_batch2: Path) -> dict[str, list[str]]:
    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    return {
        "missing model": [str(tmp_path / "absent.onnx")],
        "not a model": [str(text)],
        "keep_res on a fixed size": [str(tiny_onnx_batch2), "--keep-res"],
        "another batch": [str(tiny_onnx_batch2), "--batch", "3"],
        "no images": [str(tiny_onnx_batch2)],
    }


def test_fatal_errors_are_one_line_exit_2(
    cpp_binary, tiny_onnx_batch2, photo_paths, tmp_path, capsys
):
    for case, args in _fatal_cases(tmp_path, tiny_onnx_batch2).items():
        model, rest = args[0], args[1:]
        images = [] if case == "no images" else [str(photo_paths[0])]
        out = str(tmp_path / "out")
        done = subprocess.run(
            [str(cpp_binary), model, *images, "--out", out, *rest],
            capture_output=True,
            text=True,
            check=False,
        )
        capsys.readouterr()
        code = main(["detect", model, *images, "--out", out, *rest])
        python_err = capsys.readouterr().err.strip()
        assert done.returncode == code == 2, case
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("centernet: error: "), case
        if case == "not a model":  # the parsers' own words differ after this
            prefix = python_err.split(" (")[0]
            assert done.stderr.startswith(prefix + " ("), (done.stderr, python_err)
        else:
            assert done.stderr.strip() == python_err, case


def test_prints_throughput_and_latency(cpp_binary, tiny_onnx_dynamic, photo_paths, tmp_path):
    run = run_cpp(cpp_binary, tiny_onnx_dynamic, [str(p) for p in photo_paths], tmp_path)
    assert run.code == 0
    summary, timing = run.stdout.splitlines()[:2]
    assert summary.startswith(f"detected {len(photo_paths)} of {len(photo_paths)} images in ")
    assert "img/s" in summary
    assert timing.startswith("latency per image p50 ") and "engine " in timing
