"""`detect` keeps what it finished: OUT/detections.jsonl grows a line per image as it goes,
a run killed half way (SIGKILL, a torn last line) goes on with --resume and ends with the
detections.json of a run never stopped, detecting only the images left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from centernet.cli import main

COPIES = 80  # links to the 4 photos: enough that the child is still running when killed
ARGS = ["--threshold", "0.1", "--engine", "onnxruntime", "--threads", "1"]


@pytest.fixture(scope="module")
def many(photo_paths, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("many")
    for i in range(COPIES):
        photo = photo_paths[i % len(photo_paths)]
        os.symlink(photo, folder / f"{i:03d}_{photo.name}")
    return folder


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def summary(printed: str) -> tuple[int, int, int]:
    """(detected, of, done before) from the summary line."""
    found = re.search(r"detected (\d+) of (\d+) images ", printed)
    before = re.search(r"; (\d+) done before \(--resume\)", printed)
    assert found, printed
    return int(found[1]), int(found[2]), int(before[1]) if before else 0


def test_a_killed_run_resumes_to_the_uninterrupted_result(
    tiny_onnx_dynamic, many, tmp_path, capsys
):
    model = str(tiny_onnx_dynamic)
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert main(["detect", model, str(many), "--out", str(whole), *ARGS]) == 0
    assert summary(capsys.readouterr().out) == (COPIES, COPIES, 0)
    log = stopped / "detections.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-m", "centernet.cli", "detect", model, str(many), "--out",
         str(stopped), *ARGS],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (log.is_file() and log.read_text().count("\n") >= 5):
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no lines after 120 s"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert not (stopped / "detections.json").exists()  # only at the end
    text = log.read_text()
    done = lines_of(log) if text.endswith("\n") else lines_of(log)[:-1]  # a torn last line
    assert 5 <= len(done) < COPIES
    names = sorted(p.name for p in many.iterdir())
    assert [line["file_name"] for line in done] == names[: len(done)]
    # as a hard kill may leave it: half of the next image's line, no newline
    with log.open("a") as file:
        file.write(json.dumps({"source": str(many / names[len(done)])})[:20])

    assert main(["detect", model, str(many), "--out", str(stopped), *ARGS, "--resume"]) == 0
    left = COPIES - len(done)
    assert summary(capsys.readouterr().out) == (left, left, len(done))  # the rest only
    assert (stopped / "detections.json").read_bytes() == (whole / "detections.json").read_bytes()
    assert [line["file_name"] for line in lines_of(log)] == names  # each once, the torn cut


def test_without_resume_the_log_is_replaced_and_with_it_nothing_is_redone(
    tiny_onnx_dynamic, photo_paths, tmp_path, capsys
):
    model, out = str(tiny_onnx_dynamic), tmp_path / "out"
    command = ["detect", model, *map(str, photo_paths[:2]), "--out", str(out), *ARGS]
    assert main(command) == 0
    first = (out / "detections.json").read_bytes()
    assert main(command) == 0  # again, without --resume: a new log, not a longer one
    assert len(lines_of(out / "detections.jsonl")) == 2
    capsys.readouterr()
    assert main([*command, "--resume"]) == 0  # everything done: nothing detected again
    assert summary(capsys.readouterr().out) == (0, 0, 2)
    assert (out / "detections.json").read_bytes() == first
    assert len(lines_of(out / "detections.jsonl")) == 2


def test_resume_is_refused_where_it_has_no_meaning(tiny_onnx_dynamic, tmp_path, capsys):
    # --ray resumes from its shards (tests/distributed); a stream has nothing to resume
    command = ["detect", str(tiny_onnx_dynamic), "--out", str(tmp_path), "--source", "0"]
    assert main([*command, "--resume"]) == 2
    assert "videos and streams start afresh" in capsys.readouterr().err
