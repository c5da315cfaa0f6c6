"""What the server tests share: a server in a thread (``RunningServer``), a child
``centernet serve`` process (``serve_process``), plain HTTP(S) requests, a self-signed
certificate, and readers of the answers and the metrics."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import ipaddress
import json
import queue
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from centernet.serve.config import BatchConfig, LimitsConfig, ServeConfig
from centernet.serve.server import bind, make_server, url_of
from centernet.serve.service import DetectionService
from centernet.types import Detections

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
        self.url = url_of(self.sock, service.config.transport.tls)
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
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict | None = None,
        context: ssl.SSLContext | None = None,
    ) -> Answer:
        return request(self.url, method, path, body, headers, context)

    def metrics(self, headers: dict | None = None) -> str:
        return self.request("GET", "/metrics", headers=headers).body.decode()


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """One request on a connection of its own; https:// URLs trust ``context``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=60, context=context
        )
    else:
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
        batching=BatchConfig(max_batch=8, max_delay_s=0.02, max_queue=64),
        limits=LimitsConfig(max_body_bytes=1 << 20, max_pixels=4_000_000, timeout_s=30.0),
    )
    return replace(config, **changes)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (as an IP subject alternative name, which clients check)
    and its private key, as PEM files in ``folder``: (certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(  # what strict verification (Python 3.13's default) asks of a root
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def v1_detections(answer) -> Detections:
    found = answer.json["detections"]
    return Detections(
        np.array([d["box"] for d in found], np.float32).reshape(-1, 4),
        np.array([d["score"] for d in found], np.float32),
        np.array([d["class_index"] for d in found], np.int64),
    )


def v2_outputs(answer) -> dict[str, np.ndarray]:
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in answer.json["outputs"]}


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


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
