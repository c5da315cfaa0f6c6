"""`centernet detect` on videos and streams with the bundled model (exported at 256 px):
the same boxes as on the frames saved as PNG, frame selection, a truncated file, a source
that does not open, the live path's drops and Ctrl-C, the annotated video, tracking."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from centernet.cli import main
from centernet.runtime.detector import Detector
from centernet.video.run import VideoRunConfig, open_source, run_video
from centernet.video.sources import FrameSelectionConfig
from tests.video.conftest import FPS, decode_all
from tests.video.test_sources import expected_indices, free_port

THRESHOLD = 0.3


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_video_detections_equal_detect_on_the_frames_saved_as_png(clip, shapes_model, tmp_path):
    frames = decode_all(clip.path)  # decoded here, independently of centernet.video
    png = tmp_path / "png"
    png.mkdir()
    for i, frame in enumerate(frames):
        assert cv2.imwrite(str(png / f"{i:04d}.png"), frame)  # lossless: the same pixels
    assert main(["detect", str(shapes_model), str(png), "--out", str(tmp_path / "images")]) == 0
    assert main(["detect", str(shapes_model), str(clip.path), "--out", str(tmp_path / "v")]) == 0

    lines = read_jsonl(tmp_path / "v" / "lanes.detections.jsonl")
    by_file: dict[str, list[dict]] = {}
    for entry in json.loads((tmp_path / "images" / "detections.json").read_text()):
        by_file.setdefault(entry["file_name"], []).append(entry)
    assert [line["frame"] for line in lines] == list(range(len(frames)))
    assert [line["time"] for line in lines] == pytest.approx([i / FPS for i in range(len(frames))])
    boxes = 0
    for line in lines:
        entries = by_file.get(f"{line['frame']:04d}.png", [])
        assert len(entries) == len(line["boxes"]) > 0
        assert [e["category_id"] - 1 for e in entries] == line["classes"]
        assert [e["score"] for e in entries] == line["scores"]
        for entry, (x0, y0, x1, y1) in zip(entries, line["boxes"]):
            x, y, w, h = entry["bbox"]  # both rounded to 0.01 px: x, y exactly, w, h to 0.01
            assert (x, y) == (x0, y0)
            assert abs(w - (x1 - x0)) <= 0.0101 and abs(h - (y1 - y0)) <= 0.0101
        boxes += len(entries)
    assert boxes >= 2.5 * len(frames)  # the model does see the clip's three shapes


def test_stride_start_end_pick_frames_and_their_container_timestamps(clip, shapes_model, tmp_path):
    options = ["--frame-stride", "3", "--start", "0.3", "--end", "1.3"]
    out = tmp_path / "out"
    assert main(["detect", str(shapes_model), str(clip.path), "--out", str(out), *options]) == 0
    lines = read_jsonl(out / "lanes.detections.jsonl")
    expected = expected_indices(clip.frames, FPS, FrameSelectionConfig(3, 0.3, 1.3))
    assert expected[0] == 8 and expected[-1] == 32  # 0.3 s is frame 7.5; 1.3 s frame 32.5
    assert [line["frame"] for line in lines] == expected
    assert [line["time"] for line in lines] == pytest.approx([i / FPS for i in expected])

    out = tmp_path / "max"
    assert main(["detect", str(shapes_model), str(clip.path), "--out", str(out),
                 "--max-frames", "4", "--frame-stride", "5"]) == 0  # fmt: skip
    assert [line["frame"] for line in read_jsonl(out / "lanes.detections.jsonl")] == [0, 5, 10, 15]


def test_a_truncated_video_is_reported_and_its_decoded_frames_kept(
    mjpg_clip, shapes_model, tmp_path, capsys
):
    cut = tmp_path / "cut.avi"
    data = mjpg_clip.path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    decodable = len(decode_all(cut))
    assert 0 < decodable < mjpg_clip.frames
    model, out = str(shapes_model), str(tmp_path)
    code = main(["detect", model, str(cut), str(mjpg_clip.path), "--out", out])
    assert code == 1  # the cut file's frames done, the rest reported, the next video done too
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("centernet:")]
    assert len(errors) == 1 and str(cut) in errors[0] and "truncated" in errors[0]
    assert f"only {decodable} of the {mjpg_clip.frames} frames" in errors[0]
    lines = read_jsonl(tmp_path / "cut.detections.jsonl")
    full = read_jsonl(tmp_path / "lanes.detections.jsonl")
    assert len(lines) == decodable and len(full) == mjpg_clip.frames
    assert lines[:-1] == full[: decodable - 1]  # the last decoded frame may be incomplete


def test_a_url_that_does_not_open_is_one_line_and_exit_2(shapes_model, tmp_path):
    """As a process, so that what FFmpeg and OpenCV would print on stderr is seen too."""
    url = f"rtsp://127.0.0.1:{free_port()}/live"
    done = subprocess.run(
        [sys.executable, "-m", "centernet.cli", "detect", str(shapes_model), "--source", url,
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"centernet: error: cannot open {url}: FFmpeg could not connect, or found no video "
        "stream, within 10 s"
    ]
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.fixture
def http_url() -> Iterator[Callable[[Path], str]]:
    """A loopback HTTP server (the standard library's) for files; gives each one's URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    servers = []

    def url(path: Path) -> str:
        handler = functools.partial(Quiet, directory=str(path.parent))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/{path.name}"

    yield url
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_url_among_the_inputs_is_read_in_full_like_the_file(
    clip, shapes_model, http_url, tmp_path
):
    model = str(shapes_model)
    assert main(["detect", model, http_url(clip.path), "--out", str(tmp_path / "url")]) == 0
    assert main(["detect", model, str(clip.path), "--out", str(tmp_path / "file")]) == 0
    from_url = read_jsonl(tmp_path / "url" / "lanes.detections.jsonl")
    assert len(from_url) == clip.frames
    assert from_url == read_jsonl(tmp_path / "file" / "lanes.detections.jsonl")


def test_a_url_as_source_runs_live_and_its_end_is_reported(
    clip, shapes_model, http_url, tmp_path, capsys
):
    """--source on a real URL: the live code path without pacing (the reader takes frames
    as fast as they come, the oldest dropped when the engine lags); a stream that stops
    sending is reported, exit 1, with every frame it gave accounted for."""
    url = http_url(clip.path)
    out = tmp_path / "out"
    assert main(["detect", str(shapes_model), "--source", url, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert f"centernet: {url}: the stream stopped sending frames after {clip.frames}" in (
        captured.err
    )
    dropped = int(re.search(r"(\d+) dropped", captured.out).group(1))
    lines = read_jsonl(out / "lanes.detections.jsonl")
    assert len(lines) + dropped == clip.frames
    indices = [line["frame"] for line in lines]
    assert indices == sorted(indices) and indices[-1] == clip.frames - 1


def test_video_options_without_a_video_are_refused(shapes_model, photo_paths, tmp_path, capsys):
    code = main(["detect", str(shapes_model), str(photo_paths[0]), "--out", str(tmp_path),
                 "--track", "--frame-stride", "2"])  # fmt: skip
    assert code == 2
    assert "--track, --frame-stride: for videos and streams" in capsys.readouterr().err


def test_images_and_videos_in_one_command(clip, shapes_model, photo_paths, tmp_path):
    out = tmp_path / "out"
    code = main(["detect", str(shapes_model), str(photo_paths[0]), str(clip.path),
                 "--out", str(out), "--max-frames", "3"])  # fmt: skip
    assert code == 0
    assert len(read_jsonl(out / "lanes.detections.jsonl")) == 3
    entries = json.loads((out / "detections.json").read_text())
    assert {e["file_name"] for e in entries} <= {photo_paths[0].name}


def test_the_annotated_video_has_the_sources_size_rate_and_processed_frames(
    clip, shapes_model, tmp_path
):
    out = tmp_path / "out"
    code = main(["detect", str(shapes_model), str(clip.path), "--out", str(out), "--save-video",
                 "--frame-stride", "2"])  # fmt: skip
    assert code == 0
    capture = cv2.VideoCapture(str(out / "lanes.annotated.mp4"))
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
        clip.size
    )
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS / 2)  # time runs as in the source
    drawn = decode_all(out / "lanes.annotated.mp4")
    lines = read_jsonl(out / "lanes.detections.jsonl")
    assert len(drawn) == len(lines) == clip.frames // 2
    # boxes are drawn: pixels differ from the source frame along the first box's edges
    source = decode_all(clip.path)
    x0, y0, x1, y1 = (int(round(v)) for v in lines[0]["boxes"][0])
    edge = np.abs(drawn[0][y0:y1, x0].astype(int) - source[0][y0:y1, x0].astype(int))
    assert edge.mean() > 20


def test_a_live_source_with_a_slow_consumer_drops_the_oldest_frames(clip, shapes_model, tmp_path):
    """The stream path on a local file: paced at 25 fps, the consumer takes 0.1 s a frame."""
    settings = VideoRunConfig(threshold=THRESHOLD, live=True, queue_size=2)
    detector = Detector(shapes_model, threshold=THRESHOLD)
    seen = []

    def slow(progress) -> None:
        seen.append(progress)
        time.sleep(0.1)

    source = open_source(clip.path, settings)
    summary = run_video(detector, source, tmp_path, "live", settings, on_progress=slow)
    lines = read_jsonl(tmp_path / "live.detections.jsonl")
    assert summary.source.live and summary.read.dropped > 0
    assert summary.processed + summary.read.dropped == clip.frames  # every frame accounted for
    assert len(lines) == summary.processed == len(seen)
    indices = [line["frame"] for line in lines]
    assert indices == sorted(indices) and indices[-1] == clip.frames - 1
    assert seen[-1].dropped == summary.read.dropped
    assert 0 < seen[-1].real_time_factor < 0.9  # it could not keep up, and says so
    assert not summary.errors and not summary.interrupted


def test_ctrl_c_on_a_stream_writes_what_was_done_and_exits_0(clip, shapes_model, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "centernet.cli", "detect", str(shapes_model), "--source",
         str(clip.path), "--out", str(out), "--save-video"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        jsonl = out / "lanes.detections.jsonl"
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:  # until it has detected a few frames
            if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 5:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    lines = read_jsonl(jsonl)
    assert 5 <= len(lines) < clip.frames  # stopped before the end of the 1.6 s clip
    assert f"{len(lines)} frames" in stdout and "ended by Ctrl-C" in stdout
    assert len(decode_all(out / "lanes.annotated.mp4")) == len(lines)  # a finished file


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def test_tracking_keeps_one_id_per_moving_shape(clip, shapes_model, tmp_path):
    pytest.importorskip("supervision", reason="the video extra is not installed")
    out = tmp_path / "out"
    assert main(["detect", str(shapes_model), str(clip.path), "--out", str(out), "--track"]) == 0
    lines = read_jsonl(out / "lanes.detections.jsonl")
    ids_per_shape: list[list[int]] = [[] for _ in clip.truth[0]]
    for line, truth in zip(lines, clip.truth):
        assert len(line["track_ids"]) == len(line["boxes"])
        for k, (class_id, box) in enumerate(truth):
            # the box on this shape (inclusive pixel bounds -> edges)
            shape = (box[0], box[1], box[2] + 1, box[3] + 1)
            ious = [box_iou(shape, b) for b in line["boxes"]]
            best = int(np.argmax(ious)) if ious else -1
            if best >= 0 and ious[best] >= 0.5 and line["classes"][best] == class_id:
                ids_per_shape[k].append(line["track_ids"][best])
    for ids in ids_per_shape:
        assert len(ids) >= 0.9 * clip.frames  # found in (nearly) every frame
        assert len(set(ids)) == 1 and ids[0] >= 1  # one id, from the first frame to the last
    assert len({ids[0] for ids in ids_per_shape}) == len(ids_per_shape)  # one per shape


def test_a_run_can_be_stopped_from_another_thread(clip, shapes_model, tmp_path):
    """``stop`` is how the CLI ends a stream on Ctrl-C: frames read are still written."""
    settings = VideoRunConfig(threshold=THRESHOLD, live=True)
    detector = Detector(shapes_model, threshold=THRESHOLD)
    stop = threading.Event()

    def stop_after_three(progress) -> None:
        if progress.processed == 3:
            stop.set()

    source = open_source(clip.path, settings)
    summary = run_video(detector, source, tmp_path, "s", settings, stop_after_three, stop)
    assert summary.interrupted and 3 <= summary.processed < clip.frames
    assert len(read_jsonl(tmp_path / "s.detections.jsonl")) == summary.processed


def test_track_without_supervision_says_which_extra(clip, shapes_model, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "supervision" else real(name, *a),
    )
    from centernet.errors import MissingDependencyError
    from centernet.video.tracking import require_tracking

    with pytest.raises(MissingDependencyError, match=r"pip install 'centernet-deploy\[video\]'"):
        require_tracking()
    code = main(["detect", str(shapes_model), str(clip.path), "--out", str(tmp_path), "--track"])
    assert code == 2 and not list(tmp_path.iterdir())  # refused before any work


def test_the_video_path_with_tracking_never_imports_torch():
    pytest.importorskip("supervision", reason="the video extra is not installed")
    code = (
        "import sys, numpy as np\n"
        "import centernet.cli.detect, centernet.video.run\n"
        "from centernet.types import Detections\n"
        "from centernet.video.tracking import Tracker\n"
        "boxes = Detections(np.array([[0, 0, 9, 9]], np.float32), np.array([0.9], np.float32),"
        " np.array([0]))\n"
        "Tracker(25.0, 0.3).update(boxes)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
