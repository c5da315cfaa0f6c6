"""A bounded HTTP load generator for ``centernet serve`` (standard library only).

``concurrency`` client threads, each on its own keep-alive connection, post images to
/v1/detect one after another until ``requests`` have been sent or ``duration_s`` has
passed, whichever comes first. The server's own /metrics, read before and after, give the
average batch size the engine ran.
"""

from __future__ import annotations

import http.client
import mimetypes
import re
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from centernet.errors import CenterNetError


@dataclass(frozen=True)
class LoadConfig:
    concurrency: int = 4
    requests: int = 200  # at most this many requests in all
    duration_s: float = 60.0  # and no request started after this
    threshold: float | None = None  # the server's default unless given
    timeout_s: float = 60.0  # per request, on the client side
    api_key: str | None = field(default=None, repr=False)  # a server with keys wants one
    cafile: str | None = None  # HTTPS: trust this certificate (self-signed) too


@dataclass
class LoadResult:
    """One load level's outcome; latencies of the successful requests, in seconds."""

    concurrency: int
    sent: int = 0
    ok: int = 0
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)  # status code or error name -> count
    mean_batch_size: float | None = None  # from the server's metrics; None if unreadable

    @property
    def images_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        if not self.latencies:
            return float("nan")
        return float(np.percentile(self.latencies, percentile) * 1e3)


@dataclass(frozen=True)
class Upload:
    body: bytes
    content_type: str


def load_uploads(paths: Sequence[str | Path]) -> list[Upload]:
    """The files to send, read once into memory."""
    uploads = [
        Upload(Path(p).read_bytes(), mimetypes.guess_type(str(p))[0] or "application/octet-stream")
        for p in paths
    ]
    if not uploads:
        raise CenterNetError("no images to send")
    return uploads


def run_load(
    url: str,
    uploads: Sequence[Upload],
    settings: LoadConfig,
    on_response: Callable[[], None] | None = None,
) -> LoadResult:
    """Run one load level against the server at ``url`` (http:// or https://)."""
    target = Target.of(url, settings.cafile)
    auth = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    query = "" if settings.threshold is None else f"?threshold={settings.threshold}"
    path = f"{target.path}/v1/detect{query}"
    result = LoadResult(settings.concurrency)
    lock = threading.Lock()
    before = read_batch_stats(target, auth)
    started = time.perf_counter()
    deadline = started + settings.duration_s

    def next_index() -> int | None:
        with lock:
            if result.sent >= settings.requests or time.perf_counter() >= deadline:
                return None
            result.sent += 1
            return result.sent - 1

    def client() -> None:
        connection = target.connect(settings.timeout_s)
        try:
            while (index := next_index()) is not None:
                upload = uploads[index % len(uploads)]
                sent = time.perf_counter()
                try:
                    connection.request(
                        "POST", path, upload.body, {"Content-Type": upload.content_type, **auth}
                    )
                    response = connection.getresponse()
                    response.read()
                    outcome: int | str = response.status
                except (OSError, http.client.HTTPException) as exc:
                    outcome = type(exc).__name__
                    connection.close()  # reconnects on the next request
                elapsed = time.perf_counter() - sent
                with lock:
                    if outcome == 200:
                        result.ok += 1
                        result.latencies.append(elapsed)
                    else:
                        result.failures[outcome] += 1
                if on_response is not None:
                    on_response()
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(settings.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - started
    after = read_batch_stats(target, auth)
    if before is not None and after is not None and after[1] > before[1]:
        result.mean_batch_size = (after[0] - before[0]) / (after[1] - before[1])
    return result


_BATCH_SUM = re.compile(r"^centernet_batch_size_sum\s+(\S+)$", re.M)
_BATCH_COUNT = re.compile(r"^centernet_batch_size_count\s+(\S+)$", re.M)


@dataclass(frozen=True)
class Target:
    """Where the server is, and how to open a connection to it."""

    host: str
    port: int
    path: str  # a prefix before /v1/detect, if any
    context: ssl.SSLContext | None  # None: plain HTTP

    @classmethod
    def of(cls, url: str, cafile: str | None = None) -> Target:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CenterNetError(f"{url}: expected http://HOST:PORT or https://HOST:PORT")
        tls = parts.scheme == "https"
        context = ssl.create_default_context(cafile=cafile) if tls else None
        port = parts.port or (443 if tls else 80)
        return cls(parts.hostname, port, parts.path.rstrip("/"), context)

    def connect(self, timeout_s: float) -> Any:
        if self.context is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        return http.client.HTTPSConnection(
            self.host, self.port, timeout=timeout_s, context=self.context
        )


def read_batch_stats(target: Target, headers: dict[str, str]) -> tuple[float, float] | None:
    """(images, engine calls) so far, from the server's /metrics; None if unreadable."""
    connection = target.connect(10)
    try:
        connection.request("GET", f"{target.path}/metrics", headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    images, calls = _BATCH_SUM.search(text), _BATCH_COUNT.search(text)
    if response.status != 200 or not images or not calls:
        return None
    return float(images.group(1)), float(calls.group(1))
