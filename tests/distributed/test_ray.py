"""detect/eval --ray give the local commands' files and reports; Ray Serve answers like the
plain server. One local Ray with 2 CPUs for the module, started by the first command;
kept short. The simulated cluster: test_ray_cluster.py."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import sys

import numpy as np
import pytest

from centernet.cli import main

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.fixture(scope="module")
def inputs(photo_paths, tmp_path_factory):
    """The photos, twice (two shards of 2 and more), with bad files in the middle."""
    folder = tmp_path_factory.mktemp("images")
    for copy in range(2):
        for path in photo_paths:
            shutil.copy(path, folder / f"{copy}_{path.name}")
    (folder / "1_broken.jpg").write_bytes(photo_paths[0].read_bytes()[:3000])
    (folder / "1_text.jpg").write_text("not a picture")
    return [str(folder), str(folder / "gone.jpg")]


def run_detect(model, inputs, out, capsys, *extra) -> tuple[int, bytes, list[str], str]:
    code = main(["detect", str(model), *inputs, "--out", str(out), "--threshold", "0.1", *extra])
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("centernet: skipped")]
    return code, (out / "detections.json").read_bytes(), skipped, captured.out


@pytest.fixture(scope="module")
def local(tiny_onnx_dynamic, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")

    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(
            ["detect", str(tiny_onnx_dynamic), *inputs, "--out", str(out), "--threshold", "0.1"]
        )
    skipped = [
        line for line in err.getvalue().splitlines() if line.startswith("centernet: skipped")
    ]
    return code, (out / "detections.json").read_bytes(), skipped, out


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """Ray started by the first command (connect), shut down after the module."""
    yield
    ray.shutdown()


def test_detect_on_ray_writes_the_local_files_and_report(
    tiny_onnx_dynamic, inputs, local, tmp_path, capsys
):
    code, detections, skipped, printed = run_detect(
        tiny_onnx_dynamic, inputs, tmp_path / "ray", capsys, "--ray", "--ray-batch", "3"
    )
    assert (code, detections, skipped) == local[:3]
    assert code == 1 and len(skipped) == 3 and len(json.loads(detections)) == 8 * 100
    log = (local[3] / "detections.jsonl").read_bytes()
    assert (tmp_path / "ray" / "detections.jsonl").read_bytes() == log
    shards = sorted((tmp_path / "ray" / "shards").glob("*.jsonl"))
    assert len(shards) == 4  # one per actor call of 3 of the 11 inputs
    assert "Ray: 1 actors x 2 threads on 1 node(s)" in printed


def test_eval_on_ray_gives_the_local_metrics(tiny_onnx_dynamic, tmp_path, capsys):
    synth = tmp_path / "synth"
    assert main(["synth", "--out", str(synth), "-n", "6", "--seed", "5"]) == 0
    data = json.loads((synth / "instances.json").read_text())  # the tiny model's 3 classes
    kept = {c["id"] for c in data["categories"][:3]}
    data["categories"] = data["categories"][:3]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] in kept]
    (synth / "instances.json").write_text(json.dumps(data))
    base = ["eval", str(tiny_onnx_dynamic), "--images", str(synth / "images"),
            "--ann", str(synth / "instances.json")]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "local")]) == 0
    assert main([*base, "--out", str(tmp_path / "ray"), "--ray", "--ray-batch", "4"]) == 0
    capsys.readouterr()
    local = json.loads((tmp_path / "local" / "metrics.json").read_text())
    remote = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert remote["metrics"] == local["metrics"] and remote["images"] == 6
    assert (tmp_path / "ray" / "detections.json").read_bytes() == (
        tmp_path / "local" / "detections.json"
    ).read_bytes()


def test_ray_serve_answers_like_the_plain_server(tiny_onnx_dynamic, photo_paths):
    """Also the receive deadline: trickled headers (Ray Serve's proxy) and a trickled
    body (the replica's app) are answered 408 by the deadline."""
    from centernet.distributed.ray import (
        RayConfig,
        ReplicaConfig,
        deploy_on_ray_serve,
        stop_ray_serve,
    )
    from centernet.runtime.detector import Detector
    from centernet.serve.config import BatchConfig, LimitsConfig, ServeConfig
    from tests.helpers import assert_detections_close
    from tests.serve.helpers import request, v1_detections, v2_outputs

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    config = ServeConfig(
        tiny_onnx_dynamic, name="tiny", threshold=0.1, batching=BatchConfig(max_delay_s=0.02),
        limits=LimitsConfig(receive_timeout_s=DEADLINE_S),
    )  # fmt: skip
    url = deploy_on_ray_serve(config, "127.0.0.1", port, ReplicaConfig(1), RayConfig())
    try:
        want = Detector(tiny_onnx_dynamic, threshold=0.1)([str(p) for p in photo_paths[:2]])
        answer = request(url, "POST", "/v1/detect", photo_paths[0].read_bytes(),
                         {"Content-Type": "image/jpeg"})  # fmt: skip
        assert answer.status == 200, answer.body
        assert_detections_close(v1_detections(answer), want[0], atol=0.006, score_atol=1e-5)
        body = json.dumps({"inputs": [{
            "name": "IMAGE", "datatype": "BYTES", "shape": [2],
            "data": [base64.b64encode(p.read_bytes()).decode() for p in photo_paths[:2]],
        }]}).encode()  # fmt: skip
        answer = request(url, "POST", "/v2/models/tiny/infer", body)
        assert answer.status == 200, answer.body
        outputs = v2_outputs(answer)
        for row, found in enumerate(want):
            n = int(outputs["num_detections"][row])
            assert n == len(found)
            np.testing.assert_allclose(
                outputs["detection_scores"][row, :n], found.scores, atol=1e-5
            )
        bad = request(url, "POST", "/v1/detect", b"junk", {"Content-Type": "image/jpeg"})
        assert bad.status == 400 and "not a decodable image" in bad.json["error"]
        for part, says in (("headers", "headers were not received"), ("body", "not received")):
            seconds, status, error = trickled(port, part)
            assert status == 408 and says in error and "--receive-timeout-s" in error, error
            assert DEADLINE_S - 0.05 <= seconds <= DEADLINE_S + 1.5, (part, seconds)
    finally:
        stop_ray_serve()


DEADLINE_S = 2.0


def trickled(port: int, part: str) -> tuple[float, int, str]:
    """A client that sends the ``headers`` (or, after whole headers, the ``body``) of a
    request a byte every 0.25 s: seconds until the answer, its status and error."""
    import select
    import time

    head = b"POST /v1/detect HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    started = time.perf_counter()
    if part == "body":
        sock.sendall(head + b"Content-Length: 100000\r\n\r\n")
    trickle = head if part == "headers" else b"x" * 100
    for i in range(len(trickle)):  # stop before the deadline: a byte that crosses the
        # 408 on the wire may make the server's kernel reset the connection (TCP)
        if select.select([sock], [], [], 0)[0] or time.perf_counter() - started > 1.5:
            break
        sock.sendall(trickle[i : i + 1])
        time.sleep(0.25)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    seconds = time.perf_counter() - started
    response = b"".join(chunks)
    head_of, _, body = response.partition(b"\r\n\r\n")
    status = int(head_of.split(b" ")[1]) if head_of.startswith(b"HTTP/1.1 ") else 0
    return seconds, status, json.loads(body or b"{}").get("error", response.decode())


def test_without_ray_the_flag_says_how_to_install_it(
    tiny_onnx_dynamic, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    code = main(
        ["detect", str(tiny_onnx_dynamic), str(tmp_path), "--out", str(tmp_path / "o"), "--ray"]
    )
    assert code == 2
    assert "pip install 'centernet-deploy[ray]'" in capsys.readouterr().err


def test_serve_ray_command_answers_and_stops_on_sigterm(tiny_onnx_dynamic, photo_paths, tmp_path):
    """`serve --ray` with the plain server's access options: keys, TLS, the page."""
    import signal
    import ssl

    from tests.serve.helpers import request, self_signed_certificate, serve_process, stderr_of

    cert, key = self_signed_certificate(tmp_path)
    (tmp_path / "keys").write_text("ray-key-1\n")
    options = ("--ray", "--threshold", "0.1", "--api-key-file", str(tmp_path / "keys"),
               "--ssl-certfile", str(cert), "--ssl-keyfile", str(key))  # fmt: skip
    with serve_process(tiny_onnx_dynamic, *options) as (process, url):
        assert url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        body, jpeg = photo_paths[0].read_bytes(), {"Content-Type": "image/jpeg"}
        refused = request(url, "POST", "/v1/detect", body, jpeg, context)
        assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        answer = request(url, "POST", "/v1/detect", body,
                         {**jpeg, "Authorization": "Bearer ray-key-1"}, context)  # fmt: skip
        assert answer.status == 200 and answer.json["detections"]
        for path in ("/v2/health/ready", "/"):  # open without a key
            assert request(url, "GET", path, context=context).status == 200, path
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert "SIGTERM: Ray Serve deployment stopped" in stderr_of(process)
