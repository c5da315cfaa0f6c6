"""The server against the library on the same JPEGs, in the same run.

    python benchmarks/bench_serve.py --model runs/share/int8.onnx --images runs/share/jpegs \
        [--concurrency 1,4,8,16] [--requests 48] [--engine onnxruntime] [--json F]

MODEL: the full-size dlav0_34 int8 build at 512 with a dynamic batch (``benchmarks/
bench_share.py`` makes it, and the JPEGs). Measures, alternating so drift hits both:

- ``Detector.stream`` over the JPEG bytes in memory (decode, pre-process, engine, decode
  boxes), batch 1 and batch 8: the library's own images/s;
- ``centernet serve MODEL --max-batch 8 --max-delay-ms 5`` as a separate process, loaded by
  ``serve/loadtest.py`` clients (one keep-alive connection each) at each concurrency:
  images/s, latency p50/p99 and the mean batch size from /metrics.

Prints a markdown table; ratios are server images/s over the best Detector.stream figure.
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from centernet.measure import describe_machine
from centernet.runtime import Detector
from centernet.serve import LoadConfig, load_uploads, run_load


def stream_rate(model: str, engine: str, images: list[bytes], batch: int) -> float:
    """Images/s of Detector.stream on ``images`` (bytes), after one warm-up pass."""
    detector = Detector(model, engine=engine, batch_size=batch, threshold=0.3)
    list(detector.stream(images[: 2 * batch]))
    started = time.perf_counter()
    results = list(detector.stream(images))
    elapsed = time.perf_counter() - started
    assert all(r.ok for r in results)
    return len(results) / elapsed


def start_server(model: str, engine: str, max_batch: int, delay_ms: float) -> tuple:
    process = subprocess.Popen(
        [sys.executable, "-m", "centernet.cli", "serve", model, "--port", "0", "--engine", engine,
         "--max-batch", str(max_batch), "--max-delay-ms", str(delay_ms), "--max-queue", "256"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    while True:
        line = lines.get(timeout=300)
        if "serving" in line:
            return process, line.rsplit(" on ", 1)[1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True, help="folder of JPEGs")
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--requests", type=int, default=48, help="per concurrency level")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    paths = sorted(Path(args.images).glob("*.jpg"))
    uploads = load_uploads(paths)
    images = [u.body for u in uploads]
    machine = describe_machine()
    print(f"machine: {machine}", flush=True)
    stream: dict[int, list[float]] = {1: [], 8: []}
    levels: dict[int, dict] = {}
    for batch in stream:  # the library first ...
        stream[batch].append(stream_rate(args.model, args.engine, images, batch))
        print(f"Detector.stream batch {batch}: {stream[batch][-1]:.2f} images/s", flush=True)
    process, url = start_server(args.model, args.engine, args.max_batch, args.max_delay_ms)
    try:  # ... then the server, warmed up, at each concurrency ...
        run_load(url, uploads, LoadConfig(concurrency=4, requests=16))
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            result = run_load(
                url, uploads,
                LoadConfig(concurrency=concurrency, requests=args.requests, duration_s=600),
            )  # fmt: skip
            assert not result.failures, result.failures
            levels[concurrency] = {
                "images_per_s": result.images_per_s,
                "p50_ms": result.latency_ms(50),
                "p99_ms": result.latency_ms(99),
                "mean_batch": result.mean_batch_size,
                "requests": result.ok,
            }
            print(f"server, {concurrency} clients: {levels[concurrency]}", flush=True)
    finally:
        process.terminate()
        process.wait(60)
    for batch in stream:  # ... then the library again: drift shows as a difference
        stream[batch].append(stream_rate(args.model, args.engine, images, batch))
        print(f"Detector.stream batch {batch}: {stream[batch][-1]:.2f} images/s", flush=True)

    best_batch = max(stream, key=lambda b: sum(stream[b]))
    best = sum(stream[best_batch]) / len(stream[best_batch])
    print(f"\nmachine: {machine}; model {args.model}, engine {args.engine}, "
          f"{len(images)} JPEGs, {args.requests} requests per level\n")  # fmt: skip
    print("| front | clients | images/s | vs Detector.stream | p50 ms | p99 ms | mean batch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for batch, rates in stream.items():
        mean = sum(rates) / len(rates)
        runs = " / ".join(f"{r:.2f}" for r in rates)
        print(f"| Detector.stream batch {batch} (before / after: {runs}) | - | {mean:.2f} | "
              f"{mean / best:.2f} | | | |")  # fmt: skip
    for concurrency, level in levels.items():
        print(f"| server | {concurrency} | {level['images_per_s']:.2f} | "
              f"{level['images_per_s'] / best:.2f} | {level['p50_ms']:.0f} | "
              f"{level['p99_ms']:.0f} | {level['mean_batch']:.2f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "stream": stream, "server": levels}, indent=2)
        )


if __name__ == "__main__":
    main()
