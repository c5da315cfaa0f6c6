"""One class convention in every output (docs/output-formats.md): the same image gives the
same ``category_id``, ``class_index`` and ``class_name`` per box from `detect` on the
image (detections.json and detections.jsonl), from the server's /v1/detect, and from
`detect` on a clip of that image (the video JSONL); the 0.2 fields stay beside them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from centernet.cli import main
from centernet.datasets.coco import category_ids_for
from tests.helpers import TINY_CLASSES

THRESHOLD = 0.1  # the tiny random model's peaks score about 0.1-0.2
CLASS_KEYS = ("category_id", "class_index", "class_name")
ENGINE = ["--engine", "onnxruntime"]  # one engine on every path: the same scores


@pytest.fixture(scope="module")
def picture(photo_paths, tmp_path_factory) -> tuple[Path, Path]:
    """A photo at 256x192 as a PNG, and a clip of two lossless frames of it (FFV1)."""
    folder = tmp_path_factory.mktemp("picture")
    image = cv2.resize(cv2.imread(str(photo_paths[0])), (256, 192), interpolation=cv2.INTER_AREA)
    png = folder / "photo.png"
    assert cv2.imwrite(str(png), image)
    clip = folder / "photo.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"FFV1"), 5.0, (256, 192))
    assert writer.isOpened()
    for _ in range(2):
        writer.write(image)
    writer.release()
    capture = cv2.VideoCapture(str(clip))
    ok, frame = capture.read()
    capture.release()
    assert ok and (frame == image).all()  # the frames are the PNG's pixels
    return png, clip


def classes_of(items: list[dict]) -> list[tuple]:
    return [tuple(item[k] for k in CLASS_KEYS) + (item["score"],) for item in items]


def test_detect_serve_and_video_give_the_same_class_fields(
    tiny_onnx_dynamic, picture, tmp_path, capsys
):
    from centernet.serve.service import DetectionService
    from tests.serve.helpers import RunningServer, tiny_config

    png, clip = picture
    model = str(tiny_onnx_dynamic)
    common = ["--threshold", str(THRESHOLD), *ENGINE]
    assert main(["detect", model, str(png), "--out", str(tmp_path / "image"), *common]) == 0
    assert main(["detect", model, str(clip), "--out", str(tmp_path / "video"), *common]) == 0
    capsys.readouterr()
    entries = json.loads((tmp_path / "image" / "detections.json").read_text())
    [logged] = [json.loads(x) for x in (tmp_path / "image" / "detections.jsonl").open()]
    frames = [json.loads(x) for x in (tmp_path / "video" / "photo.detections.jsonl").open()]
    config = tiny_config(tiny_onnx_dynamic, engine="onnxruntime")
    with RunningServer(DetectionService(config)) as server:
        answer = server.request(
            "POST", f"/v1/detect?threshold={THRESHOLD}", png.read_bytes(),
            {"Content-Type": "image/png"},
        )  # fmt: skip
    assert answer.status == 200, answer.body
    served = answer.json["detections"]

    want = classes_of(entries)
    assert len(want) >= 5 and len({w[1] for w in want}) >= 2  # boxes of several classes
    ids = category_ids_for(TINY_CLASSES)
    assert all(w[:3] == (ids[w[1]], w[1], TINY_CLASSES[w[1]]) for w in want)
    assert logged == {"source": str(png), "file_name": "photo.png", "detections": entries}
    assert classes_of(served) == want
    assert [classes_of(frame["detections"]) for frame in frames] == [want, want]
    # the 0.2 fields, kept one release: the server's class_id, the video's columns
    assert [d["class_id"] for d in served] == [d["class_index"] for d in served]
    for frame in frames:
        found = frame["detections"]
        assert frame["classes"] == [d["class_index"] for d in found]
        assert frame["names"] == [d["class_name"] for d in found]
        assert frame["boxes"] == [d["box"] for d in found] == [d["box"] for d in served]
        assert frame["scores"] == [d["score"] for d in found]
