"""Timing a torch model where it runs: network-only on device tensors, and end to end from
JPEG bytes in memory to boxes on the host through the device pipeline.

A GPU runs asynchronously, so a wall clock around a call measures only the launch. Network
passes are timed with CUDA events recorded on the stream around each pass (on the CPU,
where every call is synchronous, with the wall clock); end-to-end figures end when the
boxes are on the host, which waits for the device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from centernet.engines.torch import TorchEngine
from centernet.measure.bench import Timing, summarize, time_end_to_end
from centernet.runtime.detector import Detector


@dataclass(frozen=True)
class DeviceBenchRow:
    """One batch size: the network alone, torch eager fp32 of the same network (when
    measured), and end to end (images/s through the pipelined Detector, and the latency of
    one batch from bytes to boxes)."""

    batch: int
    network: Timing
    eager_fp32: Timing | None = None
    end_to_end_images_per_s: float | None = None
    end_to_end_batch: Timing | None = None

    def to_dict(self) -> dict:
        def timing(t: Timing | None) -> dict | None:
            return None if t is None else t.to_dict()

        return {
            "batch": self.batch,
            "network": timing(self.network),
            "eager_fp32": timing(self.eager_fp32),
            "end_to_end_images_per_s": self.end_to_end_images_per_s,
            "end_to_end_batch": timing(self.end_to_end_batch),
        }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_forward(
    engine: TorchEngine, batch: int, iterations: int = 50, warmup: int = 5, seed: int = 0
) -> Timing:
    """Latency of ``engine``'s network on a random batch already on its device (the
    graph's own input buffer with CUDA graphs, so no copy is timed)."""
    height, width = engine.spec.input_size
    shape = (batch, 3, height, width)
    generator = torch.Generator().manual_seed(seed)
    x = engine.runner.input_buffer(shape)
    x.copy_(torch.randn(shape, generator=generator))
    for _ in range(warmup):
        engine.forward(x)
    synchronize(engine.device)
    if engine.device.type != "cuda":
        seconds = []
        for _ in range(iterations):
            start = time.perf_counter()
            engine.forward(x)
            seconds.append(time.perf_counter() - start)
        return summarize(batch, seconds)
    events = [(torch.cuda.Event(True), torch.cuda.Event(True)) for _ in range(iterations)]
    for begin, end in events:
        begin.record()
        engine.forward(x)
        end.record()
    torch.cuda.synchronize(engine.device)
    return summarize(batch, [begin.elapsed_time(end) / 1e3 for begin, end in events])


def time_device_batches(
    detector: Detector, encoded: Sequence[bytes], iterations: int = 20, warmup: int = 2
) -> Timing:
    """Latency of one batch through the device stages, from JPEG bytes to Detections on
    the host, run one batch at a time (no overlap between batches)."""
    if detector.pipeline != "device":
        raise ValueError("time_device_batches needs a Detector with pipeline='device'")
    stages = detector.stages
    size = detector.batch_size
    work = [encoded[(i * size + j) % len(encoded)] for i in range(iterations + warmup)
            for j in range(size)]  # fmt: skip
    seconds = []
    for i in range(iterations + warmup):
        start = time.perf_counter()
        members = [
            stages.prepare(data, j) for j, data in enumerate(work[i * size : (i + 1) * size])
        ]
        batch = stages.assemble([m for m in members if m.result.ok])
        if batch is not None:
            stages.to_detections(stages.run(batch), batch.boxes)
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return summarize(size, seconds)


def bench_torch_model(
    engine: TorchEngine,
    batches: Sequence[int],
    iterations: int,
    warmup: int,
    encoded: Sequence[bytes] = (),
    baseline: TorchEngine | None = None,
    on_row: Callable[[DeviceBenchRow], None] | None = None,
) -> list[DeviceBenchRow]:
    """Per batch size: the network on its device; ``baseline`` (torch eager fp32 of the
    same network) in the same run; and with ``encoded`` JPEGs, the device pipeline end to
    end. ``on_row`` hears each row as it is measured."""
    rows = []
    for batch in batches:
        network = time_forward(engine, batch, iterations, warmup)
        eager = time_forward(baseline, batch, iterations, warmup) if baseline else None
        e2e_rate = e2e = None
        if encoded:
            detector = Detector(engine, batch_size=batch, pipeline="device")
            count = max(len(encoded), 4 * batch)
            work = [encoded[i % len(encoded)] for i in range(count)]
            e2e_rate = time_end_to_end(detector, work, warmup=2 * batch)
            e2e = time_device_batches(detector, encoded, max(3, iterations // 2))
        row = DeviceBenchRow(batch, network, eager, e2e_rate, e2e)
        if on_row:
            on_row(row)
        rows.append(row)
    return rows
