"""Thread settings around the engine on a small CPU: do any of them change end to end?

    python benchmarks/bench_threads.py --model runs/bench/share/int8.onnx \
        --images runs/bench/share/jpegs [--batch 1] [--rounds 3]

In one process, the variants take turns for ``--rounds`` rounds; each round times the
network alone (random input) and ``Detector.stream`` over the images. Variants:

- ``ort spin`` / ``ort no-spin``: ONNX Runtime with intra-op spin-waiting on (its
  default) or off (``session.intra_op.allow_spinning = 0``);
- ``ov`` / ``ov no-pin``: OpenVINO with its default thread pinning, or with
  ``ENABLE_CPU_PINNING`` off;
- on the default engine: ``1 reader`` (instead of 2), ``cv2 1 thread`` (OpenCV's own
  parallelism off), ``nice helpers`` (reader and decoder threads at nice 10, so that the
  engine's threads win the cores).
Prints a markdown table of medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import onnxruntime as ort

from centernet.engines import OnnxRuntimeEngine, open_engine
from centernet.measure import describe_machine, time_network
from centernet.runtime import Detector


def ort_engine(model: str, spin: bool) -> OnnxRuntimeEngine:
    engine = OnnxRuntimeEngine(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    engine.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return engine


def ov_engine(model: str, pinning: bool | None):
    engine = open_engine(model, "openvino")
    if pinning is not None:
        config = {**engine.config, "ENABLE_CPU_PINNING": pinning}
        engine.compiled = engine.core.compile_model(str(model), "CPU", config)
        engine._outputs = [engine.compiled.output(n) for n in engine.output_names]
    return engine


class NicedDetector(Detector):
    """Reader and decoder threads lower their own priority (Linux: per-thread nice)."""

    def prepare(self, *args, **kwargs):
        _nice_this_thread()
        return super().prepare(*args, **kwargs)

    def _decode(self, *args, **kwargs):
        _nice_this_thread()
        return super()._decode(*args, **kwargs)


def _nice_this_thread(level: int = 10) -> None:
    thread = threading.current_thread()
    if not getattr(thread, "centernet_niced", False):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), level)
        thread.centernet_niced = True  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated name parts, e.g. spin")
    args = parser.parse_args()
    paths = sorted(str(p) for p in Path(args.images).glob("*.jpg"))
    ort_default = ort_engine(args.model, spin=True)
    variants = {
        "ort spin (default)": (ort_default, Detector, 2, 0),
        "ort no-spin": (ort_engine(args.model, spin=False), Detector, 2, 0),
        "ort, 1 reader": (ort_default, Detector, 1, 0),
        "ort, cv2 1 thread": (ort_default, Detector, 2, 1),
        "ort, nice helpers": (ort_default, NicedDetector, 2, 0),
        "ov (default)": (ov_engine(args.model, None), Detector, 2, 0),
        "ov no-pin": (ov_engine(args.model, False), Detector, 2, 0),
    }
    if args.only:
        parts = args.only.split(",")
        variants = {k: v for k, v in variants.items() if any(p in k for p in parts)}
    cv2_threads = cv2.getNumThreads()
    network = {k: [] for k in variants}
    e2e = {k: [] for k in variants}
    for engine, kind, readers, _ in variants.values():  # warm up
        list(kind(engine, batch_size=args.batch, readers=readers).stream(paths[:8]))
    for _ in range(args.rounds):
        for name, (engine, kind, readers, cv_threads) in variants.items():
            cv2.setNumThreads(cv_threads or cv2_threads)
            network[name].append(time_network(engine, args.batch, 8, 1).images_per_s)
            detector = kind(engine, batch_size=args.batch, readers=readers)
            started = time.perf_counter()
            done = sum(1 for _ in detector.stream(paths))
            e2e[name].append(done / (time.perf_counter() - started))
        cv2.setNumThreads(cv2_threads)
    print(f"Machine: {describe_machine()}; {Path(args.model).name}, batch {args.batch}\n")
    print("| variant | network img/s | end-to-end img/s | e2e / network | rounds (e2e) |")
    print("|---|---|---|---|---|")
    for name in variants:
        net, end = statistics.median(network[name]), statistics.median(e2e[name])
        shown = ", ".join(f"{v:.2f}" for v in e2e[name])
        print(f"| {name} | {net:.2f} | {end:.2f} | {end / net:.0%} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
