"""The pipelined Detector: input order, bad files mid-stream, short last batches, overlap."""

from __future__ import annotations

import threading
import time

import numpy as np

from centernet.pipeline import Detector


class SlowEngine:
    """Wraps an engine: records batch shapes and the threads that ran pre-processing."""

    def __init__(self, engine, delay: float = 0.0):
        self.inner, self.delay = engine, delay
        self.name, self.spec = "slow", engine.spec
        self.batches: list[int] = []

    @property
    def batch_size(self):
        return self.inner.batch_size

    def __call__(self, batch):
        self.batches.append(len(batch))
        time.sleep(self.delay)
        return self.inner(batch)


def test_order_bad_files_and_short_last_batch(tiny_onnx_dynamic, photo_paths, tmp_path):
    (tmp_path / "bad.jpg").write_text("not an image")
    good = [str(p) for p in photo_paths]
    sources = [
        good[0],
        str(tmp_path / "bad.jpg"),
        good[1],
        str(tmp_path / "gone.jpg"),
        good[2],
        good[3],
        good[0],
    ]
    reference = Detector(tiny_onnx_dynamic, batch_size=1)
    detector = Detector(tiny_onnx_dynamic, batch_size=3, readers=3)
    engine = SlowEngine(detector.engine)
    detector.engine = engine
    results = list(detector.stream(sources))
    assert [r.index for r in results] == list(range(len(sources)))
    assert [r.source for r in results] == sources
    assert [r.ok for r in results] == [True, False, True, False, True, True, True]
    assert engine.batches == [3, 2]  # 5 readable images: one full batch, one short
    for result in results:
        if result.ok:
            expected = reference(result.source)
            assert np.allclose(result.detections.xyxy, expected.xyxy, atol=1e-4)
            assert np.array_equal(result.detections.class_ids, expected.class_ids)


def test_reading_overlaps_the_engine(tiny_onnx_dynamic, photo_paths):
    """While the engine works on one batch, the readers prepare the next ones."""
    detector = Detector(tiny_onnx_dynamic, batch_size=1, readers=2, prefetch=4)
    engine = SlowEngine(detector.engine, delay=0.2)
    detector.engine = engine
    started, seen = time.perf_counter(), []
    original = detector._prepare

    def timed_prepare(index, source):
        seen.append((index, time.perf_counter() - started, threading.current_thread().name))
        return original(index, source)

    detector._prepare = timed_prepare
    list(detector.stream([str(p) for p in photo_paths]))
    # image 3 was being read before the engine finished image 0 (0.2 s in)
    assert [i for i, t, _ in seen if t < 0.2] == [0, 1, 2, 3]
    assert all(name.startswith("centernet-read") for _, _, name in seen)


def test_a_stream_of_only_bad_files_ends(tiny_onnx_dynamic, tmp_path):
    results = list(
        Detector(tiny_onnx_dynamic, batch_size=4).stream(
            [str(tmp_path / f"{i}.jpg") for i in range(5)]
        )
    )
    assert len(results) == 5 and not any(r.ok for r in results)
    assert all(r.error == "no such file" for r in results)
