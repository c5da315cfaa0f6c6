"""The centernet command end to end: export, detect (with bad files), eval; exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from centernet.cli import main
from centernet.modelfile.spec import read_spec
from centernet.runtime.detector import Detector
from tests.helpers import TINY_CLASSES, write_bad_and_odd_images, write_self_annotations


def test_export_from_checkpoint(tiny_checkpoint, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "m.onnx"
    code = main(
        ["export", str(tiny_checkpoint), "-o", str(out), "--input-size", "128", "--dynamic-batch"]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    spec = read_spec(onnx.load(str(out)))
    assert spec.class_names == TINY_CLASSES and spec.batch == "dynamic"
    assert spec.input_size == (128, 128) and spec.extra["arch_args"] == {"width": 0.25}


def test_export_and_torch_engine_take_the_checkpoints_input_size(tiny_network, tmp_path):
    """A checkpoint trained for another input size exports and runs at that size."""
    pytest.importorskip("torch")
    from centernet.engines import EngineConfig
    from centernet.engines.torch import TorchEngine
    from centernet.models.checkpoint import load_checkpoint, save_checkpoint

    sized, plain = tmp_path / "sized.pth", tmp_path / "plain.pth"
    args = dict(epoch=1, arch="dlav0_34", arch_args={"width": 0.25}, class_names=TINY_CLASSES)
    save_checkpoint(sized, tiny_network, input_size=(96, 160), **args)
    save_checkpoint(plain, tiny_network, **args)
    assert load_checkpoint(sized).input_size == (96, 160)
    assert load_checkpoint(plain).input_size is None

    for path, expected in ((sized, (96, 160)), (plain, (512, 512))):
        out = tmp_path / f"{path.stem}.onnx"
        assert main(["export", str(path), "-o", str(out), "--no-verify"]) == 0
        assert read_spec(onnx.load(str(out))).input_size == expected
        assert TorchEngine.from_checkpoint(path).spec.input_size == expected
    # an explicit size wins over the stored one
    engine = TorchEngine.from_checkpoint(sized, EngineConfig(input_size=(64, 64)))
    assert engine.spec.input_size == (64, 64)
    out = tmp_path / "given.onnx"
    assert main(["export", str(sized), "-o", str(out), "--input-size", "128", "--no-verify"]) == 0
    assert read_spec(onnx.load(str(out))).input_size == (128, 128)


def test_export_of_a_non_checkpoint_is_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")
    assert main(["export", str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a PyTorch checkpoint: it is a text file" in err
    assert not (tmp_path / "x.onnx").exists()


def test_detect_skips_bad_files_and_exits_1(tiny_onnx_dynamic, photo_paths, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cases = write_bad_and_odd_images(folder, photo_paths[0])
    shutil.copy(photo_paths[1], folder / "photo.jpg")
    missing = str(folder / "missing.jpg")
    code = main(
        [
            "detect",
            str(tiny_onnx_dynamic),
            str(folder),
            missing,
            "--out",
            str(tmp_path / "out"),
            "--save-images",
            "--threshold",
            "0",
            "--batch",
            "3",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    bad = [n for n, e in cases.items() if e is not None]
    for name in bad:
        assert f"{name}: {cases[name]}" in err
    entries = json.loads((tmp_path / "out" / "detections.json").read_text())
    good = {n for n, e in cases.items() if e is None} | {"photo.jpg"}
    assert {e["file_name"] for e in entries} == good
    keys = {"file_name", "category_id", "class_index", "class_name", "bbox", "score"}
    assert all(set(e) == keys for e in entries)
    assert all(1 <= e["category_id"] <= len(TINY_CLASSES) for e in entries)
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == sorted(good)


def test_detect_with_checkpoint_uses_torch_engine(tiny_checkpoint, photo_paths, tmp_path):
    pytest.importorskip("torch")
    code = main(["detect", str(tiny_checkpoint), str(photo_paths[0]), "--out", str(tmp_path)])
    assert code == 0
    assert json.loads((tmp_path / "detections.json").read_text()) is not None


def test_detect_says_once_which_engine_runs_and_whether_auto_chose_it(
    tiny_onnx_dynamic, photo_paths, tmp_path, capsys
):
    from centernet.engines import auto_engine

    args = ["detect", str(tiny_onnx_dynamic), str(photo_paths[0]), "--out", str(tmp_path)]
    assert main(args) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("engine:")]
    assert lines == [f"engine: {auto_engine(tiny_onnx_dynamic)} (auto)"]
    assert main([*args, "--engine", "onnxruntime"]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("engine:")]
    assert lines == ["engine: onnxruntime"]




def test_eval_scores_perfect_on_its_own_boxes(tiny_onnx_dynamic, photo_paths, tmp_path, capsys):
    pytest.importorskip("pycocotools")
    ann = tmp_path / "instances.json"
    write_self_annotations(Detector(tiny_onnx_dynamic), photo_paths, ann)
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            str(tiny_onnx_dynamic),
            "--images",
            str(photo_paths[0].parent),
            "--ann",
            str(ann),
            "--out",
            str(out),
            "--batch",
            "2",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count(" = ") == 12
    report = json.loads((out / "metrics.json").read_text())
    assert report["metrics"]["AP"] == pytest.approx(1.0)
    assert report["metrics"]["AP50"] == pytest.approx(1.0)
    results = json.loads((out / "detections.json").read_text())
    assert {r["category_id"] for r in results} <= {3, 13, 23}
    assert {r["image_id"] for r in results} == set(range(7, 7 + len(photo_paths)))
    # --limit scores only the first image; shifting every box by 20 px ruins AP.
    data = json.loads(ann.read_text())
    for a in data["annotations"]:
        a["bbox"] = (np.array(a["bbox"]) + [20, 20, 0, 0]).tolist()
    ann.write_text(json.dumps(data))
    assert (
        main(
            [
                "eval",
                str(tiny_onnx_dynamic),
                "--images",
                str(photo_paths[0].parent),
                "--ann",
                str(ann),
                "--out",
                str(out),
                "--limit",
                "1",
            ]
        )
        == 0
    )
    report = json.loads((out / "metrics.json").read_text())
    assert report["images"] == 1 and report["metrics"]["AP"] < 0.5


def test_missing_model_is_one_line(tmp_path, photo_paths, capsys):
    code = main(
        ["detect", str(tmp_path / "nope.onnx"), str(photo_paths[0]), "--out", str(tmp_path)]
    )
    assert code == 2
    assert (
        capsys.readouterr().err.strip()
        == f"centernet: error: {tmp_path / 'nope.onnx'}: no such model file"
    )
