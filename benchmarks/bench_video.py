"""Frames/s of `detect` on a 720p video against the Detector on the same frames as images.

    python benchmarks/bench_video.py --work runs/bench_video [--seconds 10] [--rounds 3]
        [--input-size 768] [--batch 1] [--engine onnxruntime] [--track]

1. Write a synthetic 1280x720 clip (moving shapes, sensor noise, mp4v, 25 fps,
   ``--seconds`` long) and export the bundled default model to ONNX at ``--input-size``
   (its own 768 by default).
2. Decode the clip once into memory, and JPEG-encode each frame (quality 95) in memory;
   time decoding alone (CPU ms per frame): the clip through the video reader, the JPEGs
   through ``cv2.imdecode``.
3. Time, in rounds whose order rotates (the machine is shared: each round puts the three
   side by side under the same load):
   - **video**: ``run_video`` on the file, as ``centernet detect MODEL clip.mp4`` runs it
     (decoding on the reader thread, one ``Detector.stream``, the JSON lines written);
   - **JPEG in memory**: ``Detector.stream`` on the encoded frames (the image path, whose
     reader threads decode);
   - **arrays in memory**: ``Detector.stream`` on the decoded frames (no decoding at all:
     the most the video path could reach).
   Median frames/s of each, and per round the ratio of video to each image path.
Prints a markdown table and writes ``WORK/bench_video_<input size>.json``. CPU ms per
frame (all threads of this process) is printed too: on a shared machine it is steadier
than wall time, and on a saturated one throughput follows it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from centernet.measure import describe_machine
from centernet.runtime import Detector
from centernet.video.run import (
    VideoRunConfig,
    detector_threshold,
    open_source,
    run_video,
)
from centernet.video.sources import FrameReader, VideoSource
from centernet.video.synthetic import lane_shapes, write_clip

SIZE = (1280, 720)
FPS = 25.0
NOISE = 6.0  # grey levels of sensor noise: a camera-like bitrate and decoding cost


def export_default(path: Path, size: int) -> Path:
    """The bundled default model as ONNX at ``size`` (dynamic batch), made once."""
    if path.exists():
        return path
    from centernet.demo import default_model_path
    from centernet.export import ExportConfig, export_onnx
    from centernet.models import load_checkpoint

    loaded = load_checkpoint(default_model_path())
    spec = loaded.model_spec((size, size), None, extra={"checkpoint": "default_model.pth"})
    export_onnx(loaded.model, path, spec, ExportConfig(dynamic_batch=True))
    return path


def decode(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (less sensitive to the load of
    other processes than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def decode_costs(clip: Path, jpegs: list[bytes]) -> dict[str, float]:
    """CPU ms per frame of decoding alone: the clip through the video reader (decode +
    conversion to BGR), and the JPEGs through ``cv2.imdecode``."""
    cpu = cpu_seconds()
    with FrameReader(VideoSource(clip)) as reader:
        count = sum(1 for _ in reader)
    video = 1000 * (cpu_seconds() - cpu) / count
    cpu = cpu_seconds()
    for data in jpegs:
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return {"video": video, "jpeg": 1000 * (cpu_seconds() - cpu) / len(jpegs)}


def time_stream(detector: Detector, sources: list) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of one ``Detector.stream`` over ``sources``."""
    started, cpu = time.perf_counter(), cpu_seconds()
    count = sum(1 for result in detector.stream(sources) if result.ok)
    assert count == len(sources)
    return count / (time.perf_counter() - started), 1000 * (cpu_seconds() - cpu) / count


def time_video(
    detector: Detector, clip: Path, out: Path, settings: VideoRunConfig
) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of ``run_video`` on ``clip``."""
    started, cpu = time.perf_counter(), cpu_seconds()
    summary = run_video(detector, open_source(clip, settings), out, "clip", settings)
    seconds = time.perf_counter() - started
    assert not summary.errors
    return summary.processed / seconds, 1000 * (cpu_seconds() - cpu) / summary.processed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="runs/bench_video")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=768)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--track", action="store_true", help="time the video path with --track")
    args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    frames_n = int(round(args.seconds * FPS))
    clip = work / f"clip720p_{frames_n}_noise{NOISE:g}.mp4"
    if not clip.exists():
        shapes = lane_shapes(*SIZE, frames_n, count=5)
        write_clip(clip, frames_n, SIZE, FPS, "mp4v", shapes, noise=NOISE)
    model = export_default(work / f"default_{args.input_size}.onnx", args.input_size)
    arrays = decode(clip)
    jpegs = [
        cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for frame in arrays
    ]
    decoding = decode_costs(clip, jpegs)
    settings = VideoRunConfig(threshold=args.threshold, track=args.track)
    detector = Detector(
        model, engine=args.engine, threshold=detector_threshold(settings), batch_size=args.batch
    )
    time_stream(detector, arrays[:8])  # warm-up: engine, threads, caches

    modes = {
        "video": lambda: time_video(detector, clip, work / "out", settings),
        "jpeg": lambda: time_stream(detector, jpegs),
        "arrays": lambda: time_stream(detector, arrays),
    }
    rates: dict[str, list[float]] = {name: [] for name in modes}
    cpu_ms: dict[str, list[float]] = {name: [] for name in modes}
    names = list(modes)
    for round_ in range(args.rounds):
        order = names[round_ % 3 :] + names[: round_ % 3]
        for name in order:
            rate, ms = modes[name]()
            rates[name].append(rate)
            cpu_ms[name].append(ms)
        print(
            f"round {round_ + 1}: " + ", ".join(f"{n} {rates[n][-1]:.2f}" for n in names),
            file=sys.stderr,
        )
    video_vs = {
        other: [v / o for v, o in zip(rates["video"], rates[other])] for other in ("jpeg", "arrays")
    }
    result = {
        "machine": describe_machine(),
        "clip": {"path": str(clip), "frames": len(arrays), "size": SIZE, "fps": FPS},
        "model": str(model),
        "input_size": args.input_size,
        "engine": detector.engine.name,
        "batch": detector.batch_size,
        "track": args.track,
        "rounds": args.rounds,
        "frames_per_s": rates,
        "median_frames_per_s": {n: statistics.median(r) for n, r in rates.items()},
        "cpu_ms_per_frame": cpu_ms,
        "median_cpu_ms_per_frame": {n: statistics.median(r) for n, r in cpu_ms.items()},
        "decode_cpu_ms_per_frame": decoding,
        "video_over": {n: statistics.median(r) for n, r in video_vs.items()},
        "video_over_per_round": video_vs,
    }
    (work / f"bench_video_{args.input_size}.json").write_text(json.dumps(result, indent=2))
    med = result["median_frames_per_s"]
    print(f"machine: {result['machine']}")
    print(
        f"clip: {len(arrays)} frames 1280x720 mp4v; model: bundled default at "
        f"{args.input_size}x{args.input_size}, {detector.engine.name}, batch "
        f"{detector.batch_size}{', --track' if args.track else ''}; {args.rounds} rounds"
    )
    cpu = result["median_cpu_ms_per_frame"]
    over = result["video_over"]
    print("| path | frames/s (median) | video / this path (median of rounds) | CPU ms/frame |")
    print("|---|---:|---:|---:|")
    print(f"| video file (`detect clip.mp4`) | {med['video']:.2f} | 1.00 | {cpu['video']:.1f} |")
    for name, label in (("jpeg", "JPEG frames in memory"), ("arrays", "decoded frames in memory")):
        print(f"| {label} | {med[name]:.2f} | {over[name]:.3f} | {cpu[name]:.1f} |")
    print(
        f"decoding alone, CPU ms per frame: the clip (reader: decode + BGR) "
        f"{decoding['video']:.2f}, its frames as JPEG (cv2.imdecode) {decoding['jpeg']:.2f}; "
        f"JPEG {np.mean([len(j) for j in jpegs]) / 1e3:.0f} kB on average"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
