"""Frame sources without a model: which inputs are videos, which frames a selection keeps
(indices, timestamps, pixels), truncated files, sources that do not open, and the live
path's drop-oldest queue."""

from __future__ import annotations

import shutil
import socket
import time

import cv2
import numpy as np
import pytest

from centernet.errors import CenterNetError
from centernet.video.sources import (
    FrameReader,
    FrameSelectionConfig,
    SourceError,
    VideoSource,
    looks_like_video,
    split_videos,
)
from tests.video.conftest import FPS, decode_all


def read_all(
    source: VideoSource, selection: FrameSelectionConfig = FrameSelectionConfig(), **kwargs
):
    with FrameReader(source, selection, **kwargs) as reader:
        frames = list(reader)
    return frames, reader.status


def expected_indices(count: int, fps: float, selection: FrameSelectionConfig) -> list[int]:
    """The frames a selection should keep, from the definition: time in [start, end),
    every stride-th from the first one kept, at most max_frames."""
    times = [i / fps for i in range(count)]
    window = [
        i
        for i, t in enumerate(times)
        if t >= selection.start - 1e-9 and (selection.end is None or t < selection.end - 1e-9)
    ]
    kept = window[:: selection.stride]
    return kept[: selection.max_frames] if selection.max_frames else kept


def test_videos_are_told_from_images_by_extension_or_signature(clip, tmp_path, photo_paths):
    renamed = tmp_path / "recording.bin"
    shutil.copy(clip.path, renamed)  # an unknown extension: recognised by its 'ftyp' box
    not_video = tmp_path / "notes.bin"
    not_video.write_text("just text, not a container")
    photo = tmp_path / "photo.jpg"
    shutil.copy(photo_paths[0], photo)
    assert looks_like_video(clip.path) and looks_like_video(renamed)
    assert not looks_like_video(not_video) and not looks_like_video(photo)

    folder = tmp_path / "videos_only"
    folder.mkdir()
    shutil.copy(clip.path, folder / "a.mp4")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(clip.path, mixed / "b.mkv")
    shutil.copy(photo_paths[0], mixed / "c.jpg")
    videos, others = split_videos(
        [str(photo), str(renamed), str(folder), str(mixed), str(tmp_path / "*.bin")]
    )
    assert videos == [
        str(renamed), str(folder / "a.mp4"), str(mixed / "b.mkv"), str(renamed)
    ]  # fmt: skip
    # the folder of videos only is not left to the image path (it would report "no images")
    assert others == [str(photo), str(mixed), str(not_video)]


def test_a_file_gives_every_frame_with_its_index_timestamp_and_pixels(clip):
    source = VideoSource(clip.path)
    assert (source.info.width, source.info.height) == clip.size
    assert source.info.fps == pytest.approx(FPS) and source.info.frame_count == clip.frames
    assert not source.info.live
    frames, status = read_all(source)
    reference = decode_all(clip.path)
    assert [f.index for f in frames] == list(range(clip.frames)) == list(range(len(reference)))
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in range(clip.frames)])
    assert all(np.array_equal(f.image, r) for f, r in zip(frames, reference))
    assert status.finished == "end" and not status.errors and status.dropped == 0


@pytest.mark.parametrize(
    "selection",
    [
        FrameSelectionConfig(stride=3),
        FrameSelectionConfig(start=0.5, end=1.3),
        FrameSelectionConfig(stride=4, start=0.3, end=1.5),
        FrameSelectionConfig(stride=2, start=0.2, max_frames=5),
        FrameSelectionConfig(start=1.0),
    ],
    ids=repr,
)
def test_stride_start_end_and_max_frames_keep_the_right_frames(clip, selection):
    source = VideoSource(clip.path)
    expected = expected_indices(clip.frames, FPS, selection)
    assert source.info.expected_frames(selection) == len(expected)
    frames, status = read_all(source, selection)
    reference = decode_all(clip.path)
    assert [f.index for f in frames] == expected
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in expected])
    # the pixels are those of that frame, not merely a counter that says so
    assert all(np.array_equal(f.image, reference[f.index]) for f in frames)
    assert not status.errors


def test_a_truncated_file_keeps_its_decoded_frames_and_says_why(mjpg_clip, tmp_path):
    cut = tmp_path / "cut.avi"
    data = mjpg_clip.path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    decodable = decode_all(cut)
    assert 0 < len(decodable) < mjpg_clip.frames  # what OpenCV alone gets from the cut file
    frames, status = read_all(VideoSource(cut))
    full = decode_all(mjpg_clip.path)
    assert [f.index for f in frames] == list(range(len(decodable)))
    # FFmpeg conceals what is missing of the frame the cut fell in: the last may differ
    assert all(np.array_equal(f.image, full[f.index]) for f in frames[:-1])
    assert np.array_equal(frames[-1].image, decodable[-1])
    assert status.finished == "truncated" and len(status.errors) == 1
    reason = status.errors[0]
    assert f"only {len(decodable)} of the {mjpg_clip.frames} frames" in reason


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sources_that_do_not_open_say_why(clip, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all " * 20)
    headless = tmp_path / "cut.mp4"  # an mp4 cut before its index ('moov' box, at the end)
    headless.write_bytes(clip.path.read_bytes()[:4000])
    port = free_port()  # nothing listens there: refused at once
    cases = {
        str(tmp_path / "missing.mp4"): "no such file",
        str(tmp_path): "is a directory",
        str(text): "not a video",
        str(headless): "without its index",
        f"rtsp://127.0.0.1:{port}/live": "could not connect",
        f"http://127.0.0.1:{port}/clip.mp4": "could not connect",
    }
    for location, reason in cases.items():
        started = time.perf_counter()
        with pytest.raises(SourceError) as error:
            VideoSource(location)
        assert reason in str(error.value) and location in str(error.value)
        assert time.perf_counter() - started < 5


def test_a_live_source_drops_the_oldest_frames_when_its_consumer_is_slow(clip):
    """A file played as a live source (at its own pace, 25 fps) read by a consumer that
    takes 0.1 s a frame: frames are dropped, counted, and the newest ones are kept."""
    source = VideoSource(clip.path, live=True)
    assert source.info.live and source.paced
    got = []
    started = time.perf_counter()
    with FrameReader(source, queue_size=2) as reader:
        for frame in reader:
            got.append(frame.index)
            time.sleep(0.1)
        status = reader.status
    seconds = time.perf_counter() - started
    assert seconds >= (clip.frames - 1) / FPS * 0.9  # it kept the clip's pace
    assert status.dropped > 0
    assert len(got) + status.dropped == status.kept == clip.frames  # every frame is accounted
    assert got == sorted(got) and got[-1] == clip.frames - 1  # the oldest went, not the newest
    assert status.finished == "end" and not status.errors  # a file's end is not an error


def test_a_file_reader_waits_for_its_consumer_and_never_drops(clip):
    source = VideoSource(clip.path)
    got = []
    with FrameReader(source, queue_size=2) as reader:
        for frame in reader:
            got.append(frame.index)
            time.sleep(0.005)
    assert got == list(range(clip.frames)) and reader.status.dropped == 0


def test_stop_ends_reading_but_hands_out_what_is_queued(clip):
    source = VideoSource(clip.path, live=True)
    with FrameReader(source, queue_size=3) as reader:
        got = []
        for frame in reader:
            got.append(frame.index)
            if len(got) == 5:
                reader.stop()
        status = reader.status
    assert 5 <= len(got) <= 5 + 3 and status.finished == "stopped"  # + what was queued
    assert len(got) + status.dropped == status.kept


def test_bad_selections_are_refused():
    for kwargs in ({"stride": 0}, {"start": -1.0}, {"start": 2.0, "end": 1.0}, {"max_frames": 0}):
        with pytest.raises(CenterNetError, match="must"):
            FrameSelectionConfig(**kwargs)


def test_a_camera_index_that_is_not_there_does_not_open():
    with pytest.raises(SourceError, match="camera 97"):
        VideoSource(97)


def test_reader_output_matches_cv2_timestamps(clip):
    """Timestamps are the container's (CAP_PROP_POS_MSEC), not index / fps by assumption."""
    capture = cv2.VideoCapture(str(clip.path))
    stamps = []
    while capture.grab():
        stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    frames, _ = read_all(VideoSource(clip.path))
    assert [f.timestamp for f in frames] == stamps
