"""The pipelined Detector: input order, bad files mid-stream, short last batches, overlap."""

from __future__ import annotations

import threading
import time

import numpy as np

from centernet.runtime.detector import Detector


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


class FirstBatchWaits:
    """Wraps an engine: its first call waits (at most ``timeout`` s) for ``event`` and
    records whether it came, so "happened while the engine ran" needs no clock."""

    def __init__(self, engine, event: threading.Event, timeout: float = 30.0):
        self.inner, self.event, self.timeout = engine, event, timeout
        self.name, self.spec = "waits", engine.spec
        self.saw_event: bool | None = None

    @property
    def batch_size(self):
        return self.inner.batch_size

    def __call__(self, batch):
        if self.saw_event is None:
            self.saw_event = self.event.wait(self.timeout)
        return self.inner(batch)


def test_reading_overlaps_the_engine(tiny_onnx_dynamic, photo_paths):
    """While the engine works on image 0, the readers already prepare images 1-3."""
    detector = Detector(tiny_onnx_dynamic, batch_size=1, readers=2, prefetch=4)
    third_read = threading.Event()
    engine = detector.engine = FirstBatchWaits(detector.engine, third_read)
    original, threads = detector.stages.prepare, []

    def watched_prepare(source, index=0, *rest, **named):
        threads.append(threading.current_thread().name)
        if index == 3:
            third_read.set()
        return original(source, index, *rest, **named)

    detector.stages.prepare = watched_prepare
    results = list(detector.stream([str(p) for p in photo_paths]))
    assert engine.saw_event  # image 3 was being read while the engine held image 0
    assert all(r.ok for r in results) and len(results) == len(photo_paths)
    assert all(name.startswith("centernet-read") for name in threads)


def test_a_stream_of_only_bad_files_ends(tiny_onnx_dynamic, tmp_path):
    results = list(
        Detector(tiny_onnx_dynamic, batch_size=4).stream(
            [str(tmp_path / f"{i}.jpg") for i in range(5)]
        )
    )
    assert len(results) == 5 and not any(r.ok for r in results)
    assert all(r.error == "no such file" for r in results)


def _pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("centernet-")]


class SignallingEngine(SlowEngine):
    """Sets ``second_batch`` when the engine is called for the second time."""

    def __init__(self, engine):
        super().__init__(engine)
        self.second_batch = threading.Event()

    def __call__(self, batch):
        if self.batches:
            self.second_batch.set()
        return super().__call__(batch)


class BrokenEngine(SlowEngine):
    def __call__(self, batch):
        raise RuntimeError("engine exploded")


def test_the_callers_work_overlaps_the_engine(tiny_onnx_dynamic, photo_paths):
    """While the caller still holds result 0, the engine already runs the next batch."""
    detector = Detector(tiny_onnx_dynamic, batch_size=1)
    engine = detector.engine = SignallingEngine(detector.engine)
    stream = detector.stream([str(p) for p in photo_paths[:3]])
    first = next(stream)
    assert first.ok and engine.second_batch.wait(timeout=30)  # an event, not a timing
    assert len(list(stream)) == 2 and _pipeline_threads() == []


def test_leaving_early_stops_every_thread(tiny_onnx_dynamic, photo_paths):
    detector = Detector(tiny_onnx_dynamic, batch_size=2, prefetch=2)
    paths = [str(p) for p in photo_paths] * 5
    stream = detector.stream(paths)
    assert next(stream).ok and next(stream).ok
    assert _pipeline_threads()  # running
    stream.close()  # the caller leaves the loop
    assert _pipeline_threads() == []


def test_engine_and_source_failures_reach_the_caller(tiny_onnx_dynamic, photo_paths):
    detector = Detector(tiny_onnx_dynamic, batch_size=1)
    detector.engine = BrokenEngine(detector.engine)
    try:
        list(detector.stream([str(photo_paths[0])]))
        raise AssertionError("no error")
    except RuntimeError as exc:
        assert "engine exploded" in str(exc)
    assert _pipeline_threads() == []

    def sources():
        yield str(photo_paths[0])
        raise ValueError("the listing failed")

    working = Detector(tiny_onnx_dynamic, batch_size=1)
    seen = []
    try:
        for result in working.stream(sources()):
            seen.append(result)
        raise AssertionError("no error")
    except ValueError as exc:
        assert "the listing failed" in str(exc)
    assert _pipeline_threads() == []


def test_profile_accounts_for_every_stage(tiny_onnx_dynamic, photo_paths, tmp_path):
    from centernet.runtime.profiling import StageProfile

    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    sources = [str(photo_paths[0]), str(tmp_path / "bad.jpg"), str(photo_paths[1])]
    profile = StageProfile()
    results = list(Detector(tiny_onnx_dynamic, batch_size=2).stream(sources, profile=profile))
    assert [r.ok for r in results] == [True, False, True]
    assert profile.images == 3 and profile.wall > 0
    assert profile.counts["read file"] == 3 and profile.counts["decode image"] == 3
    assert profile.counts["pre-process"] == 2 and profile.counts["engine"] == 1
    assert profile.counts["post-process"] == 1 and profile.counts["caller's own work"] == 3
    stages = [row[0] for row in profile.rows()]
    assert stages.index("read file") < stages.index("engine") < stages.index("post-process")
    engine_share = next(share for stage, _, _, share in profile.rows() if stage == "engine")
    assert 0 < engine_share <= 1
