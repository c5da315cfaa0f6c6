"""`centernet serve` as a process (ready line, SIGTERM drains in-flight requests, exit 0)
and `centernet loadtest` against a running server."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from centernet.cli import main
from tests.serve.conftest import request
from tests.serve.test_routes import metric


@contextlib.contextmanager
def serve_process(model, *options: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`centernet serve MODEL --port 0 ...` in a child process and its URL once it is
    ready; killed on the way out if the test has not stopped it."""
    process = None
    try:
        process, url = _start_serve(model, *options)
        yield process, url
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def _start_serve(model, *options: str) -> tuple[subprocess.Popen, str]:
    # a file, not a pipe: a chatty child (Ray logs) never blocks on a full pipe
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as the process)
    process = subprocess.Popen(
        [sys.executable, "-m", "centernet.cli", "serve", str(model), "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    process.errors = errors  # type: ignore[attr-defined]
    lines: queue.Queue = queue.Queue()
    process.printed = []  # type: ignore[attr-defined]  # stdout, every line

    def read() -> None:
        for line in process.stdout:
            process.printed.append(line)  # type: ignore[attr-defined]
            lines.put(line)

    process.reader = threading.Thread(target=read, daemon=True)  # type: ignore[attr-defined]
    process.reader.start()  # type: ignore[attr-defined]
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert process.poll() is None, stderr_of(process)
            continue
        if "serving" in line:
            return process, line.rsplit(" on ", 1)[1].strip()
    process.kill()
    process.wait()
    raise AssertionError("the server did not report ready within 60 s")


def stderr_of(process: subprocess.Popen) -> str:
    process.errors.seek(0)  # type: ignore[attr-defined]
    return process.errors.read()  # type: ignore[attr-defined]


def test_sigterm_stops_accepting_and_answers_in_flight_requests(tiny_onnx_dynamic, photo_paths):
    # a long batching delay keeps the requests in flight when the signal comes
    options = ("--max-delay-ms", "1500", "--threshold", "0.1")
    with serve_process(tiny_onnx_dynamic, *options) as (process, url):
        assert url.startswith("http://127.0.0.1:")
        answers: list = [None] * 3

        def post(i: int) -> None:
            body = photo_paths[i].read_bytes()
            answers[i] = request(url, "POST", "/v1/detect", body, {"Content-Type": "image/jpeg"})

        threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.perf_counter() + 10
        while metric(request(url, "GET", "/metrics").body.decode(), "centernet_queued_images") < 3:
            assert time.perf_counter() < deadline, "the requests never queued"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(OSError):  # no new connections while draining
            request(url, "GET", "/v2/health/live")
        for thread in threads:
            thread.join(30)
        assert [a.status for a in answers] == [200, 200, 200]
        assert all(a.json["detections"] for a in answers)
        assert process.wait(30) == 0
        assert "SIGTERM: stopped; every accepted request was answered" in stderr_of(process)


def test_serve_reports_bad_model_and_busy_port_in_one_line(tmp_path, capsys, server):
    assert main(["serve", str(tmp_path / "missing.onnx"), "--port", "0"]) == 2
    assert "no such model file" in capsys.readouterr().err
    port = server.url.rsplit(":", 1)[1]
    assert main(["serve", str(server.service.config.model), "--port", port]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_loadtest_reports_throughput_latency_and_batch_size(server, photo_paths, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in photo_paths:
        os.symlink(path, folder / path.name)
    out = tmp_path / "load.json"
    code = main(
        ["loadtest", server.url, "--images", str(folder), "--concurrency", "1,4",
         "--requests", "12", "--warmup", "2", "--json", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "images/s" in printed and "p99 ms" in printed
    levels = json.loads(out.read_text())["levels"]
    assert [level["concurrency"] for level in levels] == [1, 4]
    for level in levels:
        assert level["requests"] == level["ok"] == 12 and level["failures"] == {}
        assert level["images_per_s"] > 0 and level["latency_ms"]["99"] >= level["latency_ms"]["50"]
    assert levels[0]["mean_batch_size"] == 1.0  # one client: nothing to batch with
    assert levels[1]["mean_batch_size"] >= 1.0
