"""Settings of one server: the model, batching and the limits every request is held to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from centernet.engines import EngineConfig
from centernet.errors import CenterNetError
from centernet.runtime.detector import DetectorConfig


@dataclass(frozen=True)
class BatchConfig:
    """Dynamic batching as Triton and Ray Serve do it."""

    max_batch: int = 8  # images per engine call (a static-batch build: its own batch)
    max_delay_s: float = 0.005  # the first image of a batch waits at most this for others
    max_queue: int = 64  # images admitted and not yet running; beyond it: 503 at once

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 1 or self.max_delay_s < 0:
            raise CenterNetError(
                "--max-batch and --max-queue must be at least 1 and --max-delay-ms at least 0"
            )


@dataclass(frozen=True)
class LimitsConfig:
    """What a request may ask for; beyond them it gets 413, 504 or 400, never a crash."""

    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000  # per image, as its header declares, before decoding
    timeout_s: float = 30.0  # arrival to answer
    max_images: int = 64  # images in one v2 request (at most the queue)
    # from the connection (or the previous answer) to the end of a request's headers, and
    # from there to its last body byte; beyond either: 408 and the connection closed
    # (uvicorn itself waits for a trickling request as long as it trickles)
    receive_timeout_s: float = 60.0


@dataclass(frozen=True)
class AccessConfig:
    """Who may call the server, and from which other sites' pages (see ``auth.py``)."""

    api_keys: tuple[str, ...] = field(default=(), repr=False)  # none: no authentication
    metrics_public: bool = False  # /metrics without a key (a scraper on a private network)
    cors_origins: tuple[str, ...] = ()  # origins whose pages may call the server
    ui: bool = True  # the page at GET /


@dataclass(frozen=True)
class TransportConfig:
    """How connections are held: TLS and the keep-alive timeout (uvicorn's, or Ray Serve's
    HTTP proxy's)."""

    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    keep_alive_s: int = 5  # an idle keep-alive connection is closed after this (s)

    def __post_init__(self) -> None:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise CenterNetError("TLS needs both --ssl-certfile and --ssl-keyfile")
        if self.keep_alive_s <= 0:
            raise CenterNetError("--keep-alive-s must be > 0")

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None


@dataclass(frozen=True)
class ServeConfig:
    """One model behind one HTTP server."""

    model: str | Path
    name: str | None = None  # the v2 model name; default the model file's stem
    engine: str = "auto"
    options: EngineConfig = field(default_factory=EngineConfig)
    batching: BatchConfig = field(default_factory=BatchConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    readers: int = 2  # threads that decode and pre-process requests' images
    threshold: float = 0.3  # default of the `threshold` request parameter
    max_dets: int = 100  # default of the `max_dets` request parameter
    # where images are decoded, warped and decoded back to boxes: "auto" is the device
    # pipeline for a checkpoint on CUDA (the GPU decodes and pre-processes each batch the
    # batcher forms), else the host's
    pipeline: str = "auto"

    @property
    def model_name(self) -> str:
        return self.name or Path(self.model).stem

    def resolved_pipeline(self) -> str:
        """``pipeline`` with "auto" decided: device for a .pth on CUDA, else host."""
        if self.pipeline != "auto":
            return self.pipeline
        on_gpu = self.options.device == "cuda" and self.engine in ("auto", "torch")
        return "device" if on_gpu and Path(self.model).suffix == ".pth" else "host"

    def detector_config(self) -> DetectorConfig:
        """The Detector whose stages the server runs (threshold and max_dets are only
        defaults: each request may set its own)."""
        return DetectorConfig(
            engine=self.engine,
            options=self.options,
            max_dets=self.max_dets,
            threshold=self.threshold,
            readers=self.readers,
            max_pixels=self.limits.max_pixels,
            pipeline=self.resolved_pipeline(),
        )
