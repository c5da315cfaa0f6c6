"""Serving: ``serve`` (the HTTP detection server) and ``loadtest`` (a bounded load
generator that reads the server's batch sizes from its metrics)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from centernet.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    AddCommand,
    add_runtime_args,
    announce_engine,
    batches,
    engine_config,
    positive_int,
)
from centernet.errors import CenterNetError, MissingDependencyError

if TYPE_CHECKING:
    from centernet.serve.config import AccessConfig, TransportConfig


def register(add_command: AddCommand) -> None:
    """Adds ``serve`` and ``loadtest``."""
    add_serve(add_command)
    add_loadtest(add_command)


def add_serve(add_command: AddCommand) -> None:
    p = add_command("serve", help="HTTP server: /v1/detect, Open Inference Protocol v2, /metrics")
    p.add_argument("model", help=".onnx export or build, or .pth checkpoint")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback unless told)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one")
    p.add_argument("--name", default=None, help="model name in v2 routes (default: file stem)")
    p.add_argument("--max-batch", type=positive_int, default=8, help="images per engine call")
    p.add_argument(
        "--max-delay-ms", type=float, default=5.0, help="longest wait for a batch to fill"
    )
    p.add_argument("--max-queue", type=positive_int, default=64, help="images waiting; beyond: 503")
    p.add_argument("--timeout-s", type=float, default=30.0, help="per request; beyond: 504")
    p.add_argument("--max-body-mb", type=float, default=20.0, help="request body; beyond: 413")
    p.add_argument(
        "--max-pixels", type=positive_int, default=40_000_000, help="per image; beyond: 413"
    )
    p.add_argument(
        "--threshold", type=float, default=0.3, help="default of the threshold parameter"
    )
    p.add_argument(
        "--readers", type=positive_int, default=2, help="threads decoding request images"
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    add_access_args(p)
    add_runtime_args(p)
    p.add_argument(
        "--pipeline", default="auto", choices=("auto", "host", "device"),
        help="where images are decoded and pre-processed: device (nvJPEG, warp and top-K "
        "on the GPU, a batch at a time; a .pth checkpoint on the torch engine) or host; "
        "auto: device for a .pth with --device cuda",
    )  # fmt: skip
    ray = p.add_argument_group("Ray Serve (pip install 'centernet-deploy[ray]')")
    ray.add_argument("--ray", action="store_true", help="run as a Ray Serve deployment")
    ray.add_argument(
        "--ray-address", default=None,
        help="join this cluster, HOST:PORT of its head (default: start Ray on this machine)",
    )  # fmt: skip
    ray.add_argument(
        "--ray-node-ip", default=None,
        help="this machine's address in the cluster (default: Ray's choice, or the "
        "--ray-address host when the cluster listens on loopback only)",
    )  # fmt: skip
    scale = ray.add_mutually_exclusive_group()
    scale.add_argument("--replicas", type=positive_int, default=1, help="fixed replica count")
    scale.add_argument(
        "--autoscale", default=None, help="MIN:MAX replicas, scaled by Ray Serve on load"
    )
    defaults = _replica_defaults()
    ray.add_argument(
        "--autoscale-target", type=float, default=defaults.target_ongoing,
        help="requests (running and waiting) per replica that --autoscale aims at",
    )  # fmt: skip
    ray.add_argument(
        "--upscale-delay-s", type=float, default=defaults.upscale_delay_s,
        help="--autoscale: load above the target this long adds a replica",
    )  # fmt: skip
    ray.add_argument(
        "--downscale-delay-s", type=float, default=defaults.downscale_delay_s,
        help="--autoscale: load below the target this long removes a replica",
    )  # fmt: skip
    p.set_defaults(func=cmd_serve)


def _replica_defaults():
    """ReplicaConfig's defaults, for the help (the class is in a module without Ray)."""
    from centernet.distributed.serve import ReplicaConfig

    return ReplicaConfig()


def add_access_args(p: argparse.ArgumentParser) -> None:
    """Who may call the server and how connections are held (docs/serving.md, on security)."""
    g = p.add_argument_group("access and connections")
    g.add_argument(
        "--api-key", default=None, metavar="KEY",
        help="require 'Authorization: Bearer KEY' (default: $CENTERNET_API_KEY; a key on the "
        "command line is visible to other local users in the process list)",
    )  # fmt: skip
    g.add_argument(
        "--api-key-file", default=None, metavar="FILE",
        help="more keys, one a line (blank lines and # comments skipped)",
    )  # fmt: skip
    g.add_argument("--metrics-public", action="store_true", help="serve /metrics without a key")
    g.add_argument(
        "--cors-origins", default=None, metavar="ORIGINS",
        help="comma-separated origins whose pages may call the server (None: no other site)",
    )  # fmt: skip
    g.add_argument("--ssl-certfile", default=None, help="TLS certificate (PEM): serve HTTPS")
    g.add_argument("--ssl-keyfile", default=None, help="TLS private key (PEM)")
    g.add_argument(
        "--receive-timeout-s", type=float, default=60.0,
        help="longest time to receive a request's headers, then its body; beyond: 408, closed",
    )  # fmt: skip
    g.add_argument(
        "--keep-alive-s", type=positive_int, default=5,
        help="seconds after which an idle keep-alive connection is closed",
    )  # fmt: skip
    g.add_argument("--no-ui", action="store_true", help="no page at GET /")


def access_config(args: argparse.Namespace) -> tuple[AccessConfig, TransportConfig]:
    """(AccessConfig, TransportConfig) from the command line; the keys from --api-key (or the
    environment) and --api-key-file."""
    import os

    from centernet.serve.auth import ENV_API_KEY, read_api_keys
    from centernet.serve.config import AccessConfig, TransportConfig

    key = args.api_key if args.api_key is not None else os.environ.get(ENV_API_KEY) or None
    for path in (args.ssl_certfile, args.ssl_keyfile):
        if path is not None and not Path(path).is_file():
            raise CenterNetError(f"no such TLS file: {path}")
    if args.receive_timeout_s <= 0:
        raise CenterNetError("--receive-timeout-s must be > 0")
    access = AccessConfig(
        api_keys=read_api_keys([key], args.api_key_file),
        metrics_public=args.metrics_public,
        cors_origins=tuple(o.strip() for o in (args.cors_origins or "").split(",") if o.strip()),
        ui=not args.no_ui,
    )
    transport = TransportConfig(args.ssl_certfile, args.ssl_keyfile, args.keep_alive_s)
    return access, transport


def describe_access(access: AccessConfig, host: str, tls: bool = False) -> list[str]:
    """Lines for stderr: how many keys (never the keys), and a warning when anyone who
    reaches a non-loopback address may run the model, or read the keys on the wire."""
    lines = []
    if access.api_keys:
        metrics = "open" if access.metrics_public else "needs a key"
        count = len(access.api_keys)
        lines.append(f"centernet: {count} API key{'s' * (count > 1)}; /metrics {metrics}")
    if _is_loopback(host):
        return lines
    if not access.api_keys:
        lines.append(
            f"centernet: warning: listening on {host} without --api-key: anyone who reaches "
            "this port can run the model"
        )
    elif not tls:
        lines.append(
            f"centernet: warning: listening on {host} without --ssl-certfile: API keys cross "
            "the network unencrypted (unless a TLS proxy is in front)"
        )
    return lines


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingDependencyError("fastapi and uvicorn", "serve") from None
    from centernet.serve.config import BatchConfig, LimitsConfig, ServeConfig
    from centernet.serve.server import bind, serve, url_of
    from centernet.serve.service import DetectionService

    if args.max_delay_ms < 0 or args.timeout_s <= 0 or args.max_body_mb <= 0:
        raise CenterNetError("--max-delay-ms must be >= 0, --timeout-s and --max-body-mb > 0")
    access, transport = access_config(args)
    config = ServeConfig(
        model=args.model,
        name=args.name,
        engine=args.engine,
        options=engine_config(args),
        batching=BatchConfig(args.max_batch, args.max_delay_ms / 1e3, args.max_queue),
        limits=LimitsConfig(
            max_body_bytes=int(args.max_body_mb * 2**20),
            max_pixels=args.max_pixels,
            timeout_s=args.timeout_s,
            max_images=args.max_queue,
            receive_timeout_s=args.receive_timeout_s,
        ),
        access=access,
        transport=transport,
        readers=args.readers,
        threshold=args.threshold,
        pipeline=args.pipeline,
    )
    for line in describe_access(access, args.host, transport.tls):
        print(line, file=sys.stderr)
    if args.ray:
        return _serve_on_ray(args, config)
    print(f"centernet: loading {args.model}", file=sys.stderr)
    service = DetectionService(config)
    announce_engine(args.engine, service.detector.engine)
    sock = bind(args.host, args.port)
    url = url_of(sock, transport.tls)

    def ready() -> None:
        batch = service.batcher.max_batch
        print(
            f"centernet: serving {service.name!r} ({service.engine_name}, batch <= {batch}, "
            f"max delay {args.max_delay_ms:g} ms) on {url}",
            flush=True,
        )

    stopped_by = serve(
        service, sock, on_ready=ready, log_level="info" if args.access_log else "warning",
        access_log=args.access_log,
    )  # fmt: skip
    reason = f"{stopped_by}: " if stopped_by else ""
    print(f"centernet: {reason}stopped; every accepted request was answered", file=sys.stderr)
    return EXIT_OK


def _serve_on_ray(args: argparse.Namespace, config) -> int:
    """The same app as a Ray Serve deployment, until SIGTERM / Ctrl-C."""
    import signal
    import threading

    from centernet.cli.distributed import ray_settings
    from centernet.distributed.ray import (
        ReplicaConfig,
        deploy_on_ray_serve,
        require_ray,
        stop_ray_serve,
    )
    from centernet.serve.server import bind

    require_ray()
    autoscale = None
    if args.autoscale:
        try:
            low, high = (int(v) for v in args.autoscale.split(":"))
        except ValueError:
            raise CenterNetError(f"--autoscale wants MIN:MAX, got {args.autoscale!r}") from None
        if not 0 <= low <= high or high < 1:
            raise CenterNetError(f"--autoscale wants 0 <= MIN <= MAX, MAX >= 1: {args.autoscale}")
        autoscale = (low, high)
    port = args.port
    if port == 0:  # Ray Serve binds by number: find a free one
        probe = bind(args.host, 0)
        port = probe.getsockname()[1]
        probe.close()
    if min(args.upscale_delay_s, args.downscale_delay_s) < 0 or args.autoscale_target <= 0:
        raise CenterNetError("--upscale-delay-s and --downscale-delay-s must be >= 0, "
                             "--autoscale-target > 0")  # fmt: skip
    scale = ReplicaConfig(
        args.replicas,
        autoscale,
        cpus_per_replica=args.threads or 1,
        target_ongoing=args.autoscale_target,
        upscale_delay_s=args.upscale_delay_s,
        downscale_delay_s=args.downscale_delay_s,
    )
    print(f"centernet: starting Ray Serve for {args.model}", file=sys.stderr)
    url = deploy_on_ray_serve(config, args.host, port, scale, ray_settings(args))
    replicas = f"{autoscale[0]}-{autoscale[1]}" if autoscale else str(args.replicas)
    print(f"centernet: serving {config.model_name!r} on Ray Serve ({replicas} replicas) on {url}",
          flush=True)  # fmt: skip
    stop = threading.Event()
    received: list[str] = []

    def on_signal(number: int, _frame: object) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stop_ray_serve()
    print(f"centernet: {received[0]}: Ray Serve deployment stopped", file=sys.stderr)
    return EXIT_OK


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_loadtest(add_command: AddCommand) -> None:
    p = add_command("loadtest", help="load a running server; images/s, latency, batch size")
    p.add_argument(
        "url", nargs="?", default="http://127.0.0.1:8000", help="the server (loopback default)"
    )
    p.add_argument("--images", required=True, help="folder (or files, comma-separated) to send")
    p.add_argument(
        "--concurrency", type=batches, default=[1, 4, 16], help="clients at once, e.g. 1,4,16"
    )
    p.add_argument(
        "--requests", type=positive_int, default=200, help="requests per concurrency level"
    )
    p.add_argument(
        "--duration-s", type=float, default=60.0, help="longest time per concurrency level"
    )
    p.add_argument("--warmup", type=int, default=8, help="requests sent first, not measured")
    p.add_argument("--threshold", type=float, default=None, help="the server's default if unset")
    p.add_argument(
        "--api-key", default=None, metavar="KEY",
        help="for a server with keys (default: $CENTERNET_API_KEY)",
    )  # fmt: skip
    p.add_argument("--cafile", default=None, help="https: also trust this certificate (PEM)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=cmd_loadtest)


def cmd_loadtest(args: argparse.Namespace) -> int:
    import os

    from centernet.runtime.images import collect_image_paths
    from centernet.serve.auth import ENV_API_KEY
    from centernet.serve.loadtest import LoadConfig, load_uploads, run_load

    api_key = args.api_key if args.api_key is not None else os.environ.get(ENV_API_KEY) or None
    client = {"api_key": api_key, "cafile": args.cafile}
    found = collect_image_paths(args.images.split(","))
    paths = [p for p in found.paths if Path(p).is_file()]
    if not paths:
        raise CenterNetError(f"no images in {args.images}")
    uploads = load_uploads(paths)
    if args.warmup > 0:
        run_load(args.url, uploads, LoadConfig(concurrency=1, requests=args.warmup, **client))
    rows, failed = [], False
    header = (
        f"{'clients':>7} {'requests':>8} {'ok':>6} {'images/s':>9} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'batch':>6}  errors"
    )
    print(f"load test of {args.url}: {len(uploads)} images, at most {args.requests} requests "
          f"and {args.duration_s:g} s per level")  # fmt: skip
    print(header)
    for concurrency in args.concurrency:
        settings = LoadConfig(
            concurrency=concurrency,
            requests=args.requests,
            duration_s=args.duration_s,
            threshold=args.threshold,
            **client,
        )
        result = run_load(args.url, uploads, settings)
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(result.failures.items(), key=str))
        batch = "-" if result.mean_batch_size is None else f"{result.mean_batch_size:.2f}"
        print(
            f"{concurrency:>7} {result.sent:>8} {result.ok:>6} {result.images_per_s:>9.2f} "
            f"{result.latency_ms(50):>8.1f} {result.latency_ms(90):>8.1f} "
            f"{result.latency_ms(99):>8.1f} {batch:>6}  {errors or 'none'}",
            flush=True,
        )
        failed |= bool(result.failures)
        rows.append(
            {
                "concurrency": concurrency,
                "requests": result.sent,
                "ok": result.ok,
                "images_per_s": result.images_per_s,
                "latency_ms": {p: result.latency_ms(p) for p in (50, 90, 99)},
                "mean_batch_size": result.mean_batch_size,
                "failures": {str(k): v for k, v in result.failures.items()},
                "wall_s": result.wall_s,
            }
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"url": args.url, "levels": rows}, indent=2))
    return EXIT_SOME_FAILED if failed else EXIT_OK
