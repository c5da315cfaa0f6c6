"""What securing the server costs: API keys, CORS and TLS against the plain server.

    python benchmarks/bench_serve_access.py --model MODEL.onnx --images DIR \
        [--requests 48] [--concurrency 4] [--rounds 2] [--calls 20000] [--json F]

Two measurements, each against a baseline taken in the same run:

- per request, in-process (no network, no model): the app's ASGI stack called directly
  for ``GET /v2`` (a route that needs a key when there are keys), without keys, with a
  key, with a key and a CORS origin; and the receive deadline alone around a trivial app
  for a POST whose body comes in three parts, against the trivial app. Microseconds per
  request, best of 5 repeats of ``--calls`` calls.
- end to end: ``centernet serve MODEL`` as a process, plain / with ``--api-key`` / with a
  key and TLS (a self-signed certificate made here), loaded by ``serve/loadtest.py`` at
  ``--concurrency`` clients, the variants alternated over ``--rounds`` rounds so that drift
  hits each alike. Images/s and p50 per variant, and the ratio to the plain server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from centernet.measure import describe_machine
from centernet.serve import (
    AccessConfig,
    DetectionService,
    LoadConfig,
    ReceiveDeadline,
    ServeConfig,
    create_app,
    load_uploads,
    run_load,
)

KEY = "bench-key-0123456789abcdef"


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }  # fmt: skip


async def per_call_us(app, scope: dict, body_parts: int, calls: int) -> float:
    """Microseconds per call of ``app`` on ``scope``, best of 5 repeats."""
    parts = [
        {"type": "http.request", "body": b"x" * 100, "more_body": i < body_parts - 1}
        for i in range(body_parts)
    ]
    status: list[int] = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            messages = iter(parts)

            async def receive(messages=messages) -> dict:
                return next(messages, {"type": "http.disconnect"})

            await app(scope, receive, send)
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    assert set(status) == {200}, set(status)
    return best


async def trivial(scope: dict, receive, send) -> None:
    """Reads the whole body, answers 200: what the deadline wraps."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def in_process(model: str, calls: int) -> dict[str, float]:
    variants = {
        "no keys": AccessConfig(),
        "API key": AccessConfig(api_keys=(KEY,)),
        "API key + CORS origin": AccessConfig(api_keys=(KEY,), cors_origins=("https://a.example",)),
    }
    service = DetectionService(ServeConfig(model))
    auth = [(b"authorization", f"Bearer {KEY}".encode()), (b"origin", b"https://a.example")]
    results = {}
    for name, access in variants.items():
        service.config = ServeConfig(model, access=access)
        app = create_app(service)  # the middleware stack is built on the first call
        scope = http_scope("GET", "/v2", auth)
        results[f"GET /v2, app, {name}"] = asyncio.run(per_call_us(app, scope, 1, calls))
    scope = http_scope("POST", "/v1/detect", [])
    results["POST 3-part body, trivial app"] = asyncio.run(per_call_us(trivial, scope, 3, calls))
    deadline = ReceiveDeadline(trivial, 60.0)
    results["POST 3-part body, trivial app + deadline"] = asyncio.run(
        per_call_us(deadline, scope, 3, calls)
    )
    return results


def self_signed(folder: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.serve.helpers import self_signed_certificate

    return self_signed_certificate(folder)


def start_server(model: str, options: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "centernet.cli", "serve", model, "--port", "0", *options],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    while True:
        line = lines.get(timeout=300)
        if "serving" in line:
            return process, line.rsplit(" on ", 1)[1].strip()


def end_to_end(args: argparse.Namespace, folder: Path) -> dict[str, list[dict]]:
    cert, key = self_signed(folder)
    variants = {
        "plain": ([], LoadConfig()),
        "API key": (["--api-key", KEY], LoadConfig(api_key=KEY)),
        "API key + TLS": (
            ["--api-key", KEY, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
            LoadConfig(api_key=KEY, cafile=str(cert)),
        ),
    }
    uploads = load_uploads(sorted(Path(args.images).glob("*.jpg")))
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            options, client = variants[name]
            process, url = start_server(args.model, options)
            try:
                run_load(url, uploads, replace(client, concurrency=2, requests=8))  # warm-up
                settings = replace(
                    client, concurrency=args.concurrency, requests=args.requests, duration_s=600
                )
                result = run_load(url, uploads, settings)
                assert not result.failures, (name, result.failures)
                row = {"images_per_s": result.images_per_s, "p50_ms": result.latency_ms(50)}
                results[name].append(row)
                print(f"round {round_ + 1}, {name}: {row}", flush=True)
            finally:
                process.terminate()
                process.wait(60)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True, help="folder of JPEGs")
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    machine = describe_machine()
    print(f"machine: {machine}", flush=True)
    micro = in_process(args.model, args.calls)
    for name, us in micro.items():
        print(f"{name}: {us:.1f} us", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        e2e = end_to_end(args, Path(folder))
    print(f"\nmachine: {machine}; model {args.model}; {args.concurrency} clients, "
          f"{args.requests} requests per variant per round, {args.rounds} rounds\n")  # fmt: skip
    print("| in-process, per request | µs |\n|---|---:|")
    for name, us in micro.items():
        print(f"| {name} | {us:.1f} |")
    plain = statistics.mean(r["images_per_s"] for r in e2e["plain"])
    print("\n| server | images/s (each round) | mean | vs plain | p50 ms |")
    print("|---|---|---:|---:|---:|")
    for name, rows in e2e.items():
        rates = [r["images_per_s"] for r in rows]
        mean = statistics.mean(rates)
        p50 = statistics.mean(r["p50_ms"] for r in rows)
        each = " / ".join(f"{r:.2f}" for r in rates)
        print(f"| {name} | {each} | {mean:.2f} | {mean / plain:.2f} | {p50:.0f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "in_process_us": micro, "server": e2e}, indent=2)
        )


if __name__ == "__main__":
    main()
