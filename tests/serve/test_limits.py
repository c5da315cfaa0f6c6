"""Every bad request gets its status and a JSON error, and the server answers the next one;
a full queue answers 503 at once; a slow answer 504."""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import threading
import time
import urllib.parse

import cv2
import numpy as np
import pytest

from centernet.serve.config import BatchConfig, LimitsConfig
from centernet.serve.service import DetectionService
from tests.serve.helpers import RunningServer, request, tiny_config


def v2(inputs, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def image_input(*files: bytes, **changes) -> dict:
    entry = {
        "name": "IMAGE",
        "datatype": "BYTES",
        "shape": [len(files)],
        "data": [base64.b64encode(f).decode() for f in files],
    }
    return {**entry, **changes}


@pytest.fixture(scope="module")
def files(photo_paths) -> dict[str, bytes]:
    photo = photo_paths[0].read_bytes()
    ok, large = cv2.imencode(".png", np.zeros((2000, 2500, 3), np.uint8))  # 5 Mpx, ~20 kB
    assert ok and len(large) < 1 << 20
    return {
        "photo": photo,
        "truncated": photo[: len(photo) // 2],
        "text": b"this is not a picture\n",
        "large": large.tobytes(),
    }


def bad_requests(files: dict[str, bytes]) -> list[tuple[str, str, bytes, dict, int, str]]:
    """(what, path, body, headers, status, error fragment)"""
    jpeg = {"Content-Type": "image/jpeg"}
    photo = files["photo"]
    return [
        ("empty body", "/v1/detect", b"", jpeg, 400, "empty body"),
        ("not an image", "/v1/detect", files["text"], jpeg, 400, "not a decodable image"),
        ("truncated", "/v1/detect", files["truncated"], jpeg, 400, "truncated JPEG"),
        ("over max pixels", "/v1/detect", files["large"], {"Content-Type": "image/png"}, 413,
         "over the 4 Mpx limit"),
        ("JSON instead of an image", "/v1/detect", b"{}", {"Content-Type": "application/json"},
         400, "send the image file itself"),
        ("bad threshold", "/v1/detect?threshold=high", photo, jpeg, 400, "threshold"),
        ("threshold out of range", "/v1/detect?threshold=2", photo, jpeg, 400, "between 0 and 1"),
        ("multipart without file", "/v1/detect", b"--b\r\nContent-Disposition: form-data; "
         b'name="other"\r\n\r\nx\r\n--b--\r\n', {"Content-Type": "multipart/form-data; boundary=b"},
         400, "no file field named 'file'"),
        ("malformed v2 JSON", "/v2/models/tiny/infer", b"{inputs: [", {}, 400, "malformed JSON"),
        ("v2 wrong datatype", "/v2/models/tiny/infer",
         v2([image_input(photo, datatype="UINT8")]), {}, 400, "datatype BYTES"),
        ("v2 wrong shape", "/v2/models/tiny/infer",
         v2([image_input(photo, shape=[2])]), {}, 400, "holds 1 elements"),
        ("v2 2-D shape", "/v2/models/tiny/infer",
         v2([image_input(photo, shape=[1, 1])]), {}, 400, "shape [N]"),
        ("v2 wrong input name", "/v2/models/tiny/infer",
         v2([image_input(photo, name="INPUT0")]), {}, 400, "unknown input 'INPUT0'"),
        ("v2 not base64", "/v2/models/tiny/infer",
         v2([{**image_input(photo), "data": ["%%%"]}]), {}, 400, "not base64"),
        ("v2 bad image among good", "/v2/models/tiny/infer",
         v2([image_input(photo, files["text"], photo)]), {}, 400, "image 1 of 3"),
        ("v2 binary size mismatch", "/v2/models/tiny/infer",
         v2([{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
              "parameters": {"binary_data_size": 99}}]) + b"\x00" * 10,
         {"Inference-Header-Content-Length": str(len(v2([{"name": "IMAGE", "datatype": "BYTES",
          "shape": [1], "parameters": {"binary_data_size": 99}}])))}, 400, "binary_data_size"),
        ("v2 unknown output", "/v2/models/tiny/infer",
         v2([image_input(photo)], outputs=[{"name": "logits"}]), {}, 400, "unknown output"),
        ("unknown model", "/v2/models/other/infer", v2([image_input(photo)]), {}, 404,
         "unknown model 'other'"),
        ("unknown version", "/v2/models/tiny/versions/2", None, {}, 404, "version 2"),
        ("unknown route", "/v1/classify", photo, jpeg, 404, "no route /v1/classify"),
    ]  # fmt: skip


def test_each_bad_request_gets_its_status_and_a_json_error(server, files):
    for what, path, body, headers, status, fragment in bad_requests(files):
        method = "GET" if body is None else "POST"
        answer = server.request(method, path, body, headers)
        assert answer.status == status, (what, answer.status, answer.body)
        assert answer.headers["content-type"] == "application/json", what
        assert fragment in answer.json["error"], (what, answer.json)
        # the server still answers a good request afterwards
        good = server.request("POST", "/v1/detect", files["photo"], {"Content-Type": "image/jpeg"})
        assert good.status == 200, (what, good.body)
    text = server.metrics()
    assert 'centernet_requests_total{code="413",endpoint="/v1/detect"}' in text
    assert 'centernet_requests_total{code="404",endpoint="unmatched"}' in text


def test_a_body_over_the_limit_is_refused_before_it_is_read(server, files):
    # declared: refused from Content-Length alone, though no byte of the body is sent
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("POST", "/v1/detect")
    connection.putheader("Content-Type", "image/jpeg")
    connection.putheader("Content-Length", str(50 << 20))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert "over the 1 MB limit (--max-body-mb)" in json.loads(response.read())["error"]
    connection.close()
    # chunked, no length: refused as soon as the limit is passed, with the body still coming
    status, error = post_chunked_until_answered(server.url, chunk=b"\xff" * (128 << 10))
    assert status == 413 and "MB is over the 1 MB limit" in error and "more than" in error
    ok = server.request("POST", "/v1/detect", files["photo"], {"Content-Type": "image/jpeg"})
    assert ok.status == 200


def post_chunked_until_answered(url: str, chunk: bytes, chunks: int = 40) -> tuple[int, str]:
    """Post a chunked body one chunk at a time, stopping once the server answers."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/detect HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(chunks):
            if select.select([sock], [], [], 0.05)[0]:  # an answer before the end of the body
                break
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            raise AssertionError(f"no answer after {chunks * len(chunk)} bytes")
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())["error"]


class SlowEngine:
    """The real engine, slowed down, so that requests pile up."""

    def __init__(self, engine, delay: float):
        self.inner, self.delay = engine, delay
        self.name, self.spec = engine.name, engine.spec
        self.entered = threading.Event()  # an engine call has begun (clear after warm-up)

    @property
    def batch_size(self):
        return self.inner.batch_size

    def __call__(self, batch):
        self.entered.set()
        time.sleep(self.delay)
        return self.inner(batch)


def slow_service(model, delay: float, **changes) -> DetectionService:
    service = DetectionService(tiny_config(model, **changes))
    service.detector.engine = SlowEngine(service.detector.engine, delay)
    return service


def post_later(url: str, body: bytes, answers: list, index: int) -> threading.Thread:
    def run() -> None:
        answers[index] = request(url, "POST", "/v1/detect", body, {"Content-Type": "image/jpeg"})

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_full_queue_answers_503_at_once(tiny_onnx_dynamic, files):
    service = slow_service(
        tiny_onnx_dynamic, 1.0, batching=BatchConfig(max_batch=1, max_delay_s=0, max_queue=1)
    )
    with RunningServer(service) as server:
        answers: list = [None, None]
        service.detector.engine.entered.clear()  # warm-up is over
        first = post_later(server.url, files["photo"], answers, 0)
        wait_for(service.detector.engine.entered.is_set)  # the engine is busy for 1 s
        second = post_later(server.url, files["photo"], answers, 1)  # waits in the queue
        wait_for(lambda: server.service.batcher._waiting == 1)
        third = server.request("POST", "/v1/detect", files["photo"], {"Content-Type": "image/jpeg"})
        assert third.status == 503 and third.headers["retry-after"] == "1"
        assert "--max-queue" in third.json["error"]
        assert third.seconds < 0.5  # answered at once, not after the engine's 1 s
        first.join()
        second.join()
        assert [a.status for a in answers] == [200, 200]


def test_a_request_not_done_in_time_answers_504_and_the_queue_recovers(tiny_onnx_dynamic, files):
    service = slow_service(
        tiny_onnx_dynamic,
        0.6,
        limits=LimitsConfig(max_body_bytes=1 << 20, max_pixels=4_000_000, timeout_s=0.3),
        batching=BatchConfig(max_batch=1, max_delay_s=0, max_queue=4),
    )
    with RunningServer(service) as server:
        answer = server.request(
            "POST", "/v1/detect", files["photo"], {"Content-Type": "image/jpeg"}
        )
        assert answer.status == 504 and "--timeout-s" in answer.json["error"]
        assert 0.25 < answer.seconds < 0.6
        wait_for(lambda: service.batcher._waiting == 0)  # its room in the queue is given back
