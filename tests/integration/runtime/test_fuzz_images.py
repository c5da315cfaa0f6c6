"""Seeded fuzzing of the image reader: mutated JPEG and PNG files never crash a run.

300 mutations of real photos (truncations, bit flips, zeroed blocks, duplicated segments,
wrong magic numbers, absurd declared sizes) are mixed with intact copies; every file must
come out detected or named with a reason, and the intact files after a bad one must give
the same boxes as when read alone.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from centernet.runtime.detector import Detector

MUTATIONS = 300
INTACT_EVERY = 10  # an intact copy after every 10 mutated files


def _small_sources(photo_paths: list[Path]) -> dict[str, bytes]:
    """Real photos re-encoded small (fast to decode): baseline and progressive JPEG, PNG."""
    sources = {}
    for i, path in enumerate(photo_paths[:2]):
        image = cv2.imread(str(path))
        image = cv2.resize(image, (image.shape[1] // 3, image.shape[0] // 3))
        sources[f"p{i}.jpg"] = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
        sources[f"p{i}_prog.jpg"] = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[
            1
        ]
        sources[f"p{i}.png"] = cv2.imencode(".png", image)[1]
    return {name: data.tobytes() for name, data in sources.items()}


def _declare_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the size a JPEG (SOF marker) or PNG (IHDR, with a valid CRC) declares."""
    out = bytearray(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        out[16:24] = struct.pack(">II", width, height)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
        return bytes(out)
    i = 2
    while i + 4 < len(out):
        marker, length = out[i + 1], int.from_bytes(out[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            out[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(out)
        i += 2 + length
    return bytes(out)


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(
        ["truncate", "bitflip", "zero", "duplicate", "magic", "huge", "absurd", "tiny_cut"]
    )
    n = len(data)
    if kind == "truncate":
        return kind, data[: rng.randrange(1, n)]
    if kind == "tiny_cut":  # a few bytes missing at the end: the commonest real damage
        return kind, data[: n - rng.randrange(1, 64)]
    if kind == "bitflip":
        out = bytearray(data)
        for _ in range(rng.randrange(1, 20)):
            out[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return kind, bytes(out)
    if kind == "zero":
        start = rng.randrange(n)
        size = rng.randrange(1, 4096)
        return kind, data[:start] + bytes(min(size, n - start)) + data[start + size :]
    if kind == "duplicate":
        start = rng.randrange(n)
        size = rng.randrange(1, 8192)
        return kind, data[: start + size] + data[start : start + size] + data[start + size :]
    if kind == "magic":
        return kind, bytes(rng.randrange(256) for _ in range(4)) + data[4:]
    if kind == "huge":  # over OpenCV's own limit (the crash this test was written for)
        return kind, _declare_size(data, 65000, 65000)
    side = rng.choice([1, 2, 7, 20000, 40000, 65535])  # absurd, or merely odd, sizes
    return kind, _declare_size(data, side, rng.choice([1, 3, 65535]))


@pytest.fixture(scope="module")
def fuzz_dir(photo_paths, tmp_path_factory) -> tuple[Path, list[str], dict[str, str]]:
    """The files in order, and for each intact copy the source it copies."""
    folder = tmp_path_factory.mktemp("fuzz")
    sources = _small_sources(photo_paths)
    names = sorted(sources)
    rng = random.Random(20261130)
    order, intact = [], {}
    for i in range(MUTATIONS):
        source = rng.choice(names)
        kind, data = _mutate(sources[source], rng)
        name = f"{i:03d}_{kind}_{source}"
        (folder / name).write_bytes(data)
        order.append(name)
        if i % INTACT_EVERY == INTACT_EVERY - 1:
            copy = f"{i:03d}z_intact_{source}"
            (folder / copy).write_bytes(sources[source])
            order.append(copy)
            intact[copy] = source
    for name in names:
        (folder / f"source_{name}").write_bytes(sources[name])
    return folder, order, intact


def test_every_mutated_file_is_detected_or_named(fuzz_dir, tiny_onnx_dynamic):
    folder, order, intact = fuzz_dir
    detector = Detector(tiny_onnx_dynamic, batch_size=4, threshold=0.0)
    alone = {
        Path(r.source).name[len("source_") :]: r.detections
        for r in detector.stream(sorted(str(p) for p in folder.glob("source_*")))
    }
    results = list(detector.stream([str(folder / name) for name in order]))
    assert [Path(r.source).name for r in results] == order
    failed = [r for r in results if not r.ok]
    for r in results:
        assert r.ok == (r.detections is not None)
        assert r.ok or (r.error and len(r.error) > 5)
    for r in results:
        name = Path(r.source).name
        if name in intact:  # intact files after bad ones: the same boxes as read alone
            assert r.ok, (name, r.error)
            want = alone[intact[name]]
            np.testing.assert_array_equal(r.detections.class_ids, want.class_ids)
            np.testing.assert_allclose(r.detections.xyxy, want.xyxy, atol=1e-3)
        if "_huge_" in name:
            assert not r.ok and "Mpx" in r.error, (name, r.error)
    kinds_failed = {Path(r.source).name.split("_")[1] for r in failed}
    assert {"truncate", "magic", "huge"} <= kinds_failed  # the fuzzing reached the errors


def test_detect_cli_on_the_fuzzed_folder(fuzz_dir, tiny_onnx_dynamic, tmp_path, capsys):
    """The command finishes, writes every readable file's boxes, names every other file
    once on stderr (the same files the library fails), and exits 1."""
    from centernet.cli import main

    folder, _, intact = fuzz_dir
    out = tmp_path / "out"
    args = ["detect", str(tiny_onnx_dynamic), str(folder), "--out", str(out), "--threshold", "0"]
    code = main([*args, "--batch", "4"])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    skipped = [
        Path(line.removeprefix("centernet: skipped ").split(": ")[0]).name
        for line in captured.err.splitlines()
        if line.startswith("centernet: skipped ")
    ]
    detected = {e["file_name"] for e in json.loads((out / "detections.json").read_text())}
    every = {p.name for p in folder.iterdir()}
    assert len(skipped) == len(set(skipped))  # each named once
    assert set(skipped) | detected == every and not set(skipped) & detected
    assert set(intact) <= detected
    library = Detector(tiny_onnx_dynamic).stream(sorted(str(p) for p in folder.iterdir()))
    assert set(skipped) == {Path(r.source).name for r in library if not r.ok}
