"""A running server on the tiny model, on a free loopback port, stopped after the tests."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from centernet.serve.config import BatchSettings, Limits, ServeConfig  # noqa: E402
from centernet.serve.server import bind, make_server, url_of  # noqa: E402
from centernet.serve.service import DetectionService  # noqa: E402

THRESHOLD = 0.1  # the tiny random model's peaks score about 0.1-0.2


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    @property
    def json(self):
        return json.loads(self.body)


class RunningServer:
    """A server in a thread of this process: ``url``, ``service``, HTTP helpers."""

    def __init__(self, service: DetectionService) -> None:
        self.service = service
        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock)
        self._ready = threading.Event()
        self.server = make_server(service, on_ready=self._ready.set)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> RunningServer:
        self.thread.start()
        assert self._ready.wait(60), "the server did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive()

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Answer:
        return request(self.url, method, path, body, headers)

    def metrics(self) -> str:
        return self.request("GET", "/metrics").body.decode()


def request(
    url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> Answer:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    started = time.perf_counter()
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        data = response.read()
        return Answer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            data,
            time.perf_counter() - started,
        )
    finally:
        connection.close()


def tiny_config(model, **changes) -> ServeConfig:
    config = ServeConfig(
        model,
        name="tiny",
        threshold=THRESHOLD,
        batching=BatchSettings(max_batch=8, max_delay_s=0.02, max_queue=64),
        limits=Limits(max_body_bytes=1 << 20, max_pixels=4_000_000, timeout_s=30.0),
    )
    return replace(config, **changes)


@pytest.fixture(scope="module")
def server(tiny_onnx_dynamic) -> Iterator[RunningServer]:
    with RunningServer(DetectionService(tiny_config(tiny_onnx_dynamic))) as running:
        yield running
