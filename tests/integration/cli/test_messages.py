"""What a new user meets: each message says what is wrong and what to do, in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from centernet.cli import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("centernet: error: "), err
    return err


def _whole_pickled_model(path) -> None:
    import torch

    torch.save(torch.nn.Conv2d(3, 4, 3), path)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("text", "it is a text file"),
        ("jpeg", "it is a JPEG image"),
        ("onnx", "ONNX model, already exported"),
        ("npy", "NumPy array"),
        ("empty", "the file is empty"),
        ("pickled_model", "pickled Python object (torch.nn.modules.conv.Conv2d)"),
    ],
)
def test_export_says_what_a_non_checkpoint_is(
    kind, expected, tmp_path, capsys, photo_paths, tiny_onnx_dynamic
):
    pytest.importorskip("torch")
    path = tmp_path / "model.pth"
    if kind == "text":
        path.write_text("weights: see the wiki\n")
    elif kind == "jpeg":
        shutil.copy(photo_paths[0], path)
    elif kind == "onnx":
        shutil.copy(tiny_onnx_dynamic, path)
    elif kind == "npy":
        with path.open("wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        _whole_pickled_model(path)
    assert main(["export", str(path), "-o", str(tmp_path / "out.onnx")]) == 2
    err = _one_line_error(capsys)
    assert expected in err
    assert "weights_only" not in err and "trusted source" not in err  # never unsafe advice
    if kind == "pickled_model":
        assert "state_dict()" in err  # the safe way out
    assert not (tmp_path / "out.onnx").exists()


def test_build_checks_its_inputs_before_writing_anything(tiny_onnx_dynamic, tmp_path, capsys):
    target = tmp_path / "new_folder" / "int8.onnx"
    args = ["build", str(tiny_onnx_dynamic), "-o", str(target), "--precision", "int8"]
    assert main([*args, "--calib-images", str(tmp_path / "no_such_folder")]) == 2
    assert "calibration folder" in _one_line_error(capsys)
    assert main(args) == 2
    assert "needs calibration images" in _one_line_error(capsys)
    assert not (tmp_path / "new_folder").exists()


def test_missing_files_and_patterns_that_match_nothing_follow_one_rule(
    tiny_onnx_dynamic, photo_paths, tmp_path, capsys
):
    """Each is named on stderr and skipped, the rest is detected, and the exit status is 1."""
    model, photo = str(tiny_onnx_dynamic), str(photo_paths[0])
    cases = {
        "missing": str(tmp_path / "missing.jpg"),
        "glob": str(tmp_path / "nothing_*.jpg"),
        "folder": str(tmp_path / "empty_folder"),
    }
    (tmp_path / "empty_folder").mkdir()
    for kind, item in cases.items():
        out = tmp_path / f"out_{kind}"
        code = main(["detect", model, photo, item, "--out", str(out), "--threshold", "0"])
        err = capsys.readouterr().err
        assert code == 1, kind
        assert f"centernet: skipped {item}: " in err and "error:" not in err
        names = {e["file_name"] for e in json.loads((out / "detections.json").read_text())}
        assert names == {photo_paths[0].name}
    assert main(["detect", model, "--out", str(tmp_path / "none")]) == 2  # nothing named at all
    assert "no images given" in _one_line_error(capsys)


def test_max_pixels_skips_large_images_before_decoding(tiny_onnx_dynamic, photo_paths, tmp_path):
    out = tmp_path / "out"
    args = ["detect", str(tiny_onnx_dynamic), str(photo_paths[0]), "--out", str(out)]
    assert main([*args, "--max-pixels", "1000"]) == 1
    assert main(args) == 0


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("detect", ["(default: 0.3)", "(default: 100)", "(default: 100000000)"]),
        ("build", ["(default: 100)", "for every build", "(default: 0.002)"]),
        ("bench", ["(default: 1,4,8)", "(default: 20)"]),
    ],
)
def test_help_shows_defaults(command, shown, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for default in shown:
        assert default in text, default
    assert "(default: None)" not in text and "(default: False)" not in text


def test_inference_and_builds_never_import_torch():
    """ONNX Runtime / OpenVINO inference and `build` work on an install without torch."""
    code = (
        "import sys\n"
        "import centernet.cli, centernet.runtime.detector, centernet.quantize.recipe\n"
        "import centernet.measure.report\n"
        "import centernet.engines.onnxruntime, centernet.engines.openvino\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
