"""Prometheus metrics of one server, in a registry of its own (two servers in one process,
as in tests, never share counters).

From them a user reads: average batch size = ``centernet_batch_size_sum / _count``;
queue vs compute time per image = ``centernet_queue_seconds`` vs
``centernet_inference_seconds_sum / centernet_images_total``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """The counters and histograms named in docs/serving.md ("Metrics")."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "centernet_requests", "HTTP requests by endpoint and status code",
            ["endpoint", "code"], registry=r,
        )  # fmt: skip
        self.images = Counter("centernet_images", "Images detected", registry=r)
        self.request_seconds = Histogram(
            "centernet_request_seconds", "Arrival to answer, per HTTP request",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_seconds = Histogram(
            "centernet_queue_seconds",
            "Per image: admitted (decoded, pre-processed) to taken into an engine batch",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_seconds = Histogram(
            "centernet_inference_seconds", "Per engine call (one batch)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "centernet_batch_size", "Images per engine call", buckets=_BATCH_BUCKETS, registry=r
        )
        self.queued_images = Gauge(
            "centernet_queued_images", "Images admitted and not yet in an engine batch",
            registry=r,
        )  # fmt: skip
        self.auth_failures = Counter(
            "centernet_auth_failures", "Requests refused for a missing or wrong API key (401)",
            ["reason"], registry=r,
        )  # fmt: skip
        for reason in ("missing", "wrong"):  # shown from the start, at 0
            self.auth_failures.labels(reason)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
