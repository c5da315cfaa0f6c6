"""An open-loop load for ``centernet serve`` (standard library only): requests sent at a set
rate whatever the answers, phase after phase, the way independent users arrive.

A closed loop (``loadtest.py``: each client waits for its answer) slows down with the
server and so never shows what an overloaded server does; an autoscaler has to be shown a
load that does not wait. Each request runs on a connection of its own in a pool of
threads large enough that a slow answer never delays the next send; a request that gets
a 5xx or no answer is tried again ``retries`` times, 0.5 s, 1 s, 2 s ... apart (as a
client that honours ``Retry-After`` would), and its latency counts from its first send.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from centernet.serve.loadtest import Upload

RETRY_S = 0.5  # the first retry's wait; each next one waits twice as long


@dataclass(frozen=True)
class Phase:
    """``rate`` requests per second for ``seconds``."""

    name: str
    rate: float
    seconds: float


@dataclass(frozen=True)
class Sent:
    """One request: when it was first sent (s from the start), its phase, its last answer
    (a status, or the error's name), its latency (s) and how many tries it took."""

    phase: str
    at: float
    status: int | str
    latency: float
    tries: int


def run_phases(
    url: str,
    uploads: Sequence[Upload],
    phases: Sequence[Phase],
    retries: int = 0,
    timeout_s: float = 60.0,
    threads: int = 64,
) -> list[Sent]:
    """Send ``uploads`` in turn to ``url``/v1/detect at each phase's rate; every request's
    outcome, in the order sent. Returns once every request has its answer."""
    parts = urllib.parse.urlsplit(url)
    results: list[Sent] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def one(phase: str, at: float, upload: Upload) -> None:
        first = time.perf_counter()
        status: int | str = "none"
        for tries in range(1, retries + 2):
            status = _post(parts, upload, timeout_s)
            if isinstance(status, int) and status < 500:
                break
            if tries <= retries:
                time.sleep(RETRY_S * 2 ** (tries - 1))  # 0.5 s, 1 s, 2 s, ...
        with lock:
            results.append(Sent(phase, at, status, time.perf_counter() - first, tries))

    with ThreadPoolExecutor(threads, thread_name_prefix="openloop") as pool:
        offset, count = 0.0, 0
        for phase in phases:
            for k in range(int(phase.rate * phase.seconds)):
                at = offset + k / phase.rate
                delay = start + at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(one, phase.name, at, uploads[count % len(uploads)])
                count += 1
            offset += phase.seconds
    return sorted(results, key=lambda sent: sent.at)


def _post(parts: urllib.parse.SplitResult, upload: Upload, timeout_s: float) -> int | str:
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.hostname, parts.port, timeout=timeout_s)
    try:
        connection.request("POST", "/v1/detect", upload.body, {"Content-Type": upload.content_type})
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        connection.close()
