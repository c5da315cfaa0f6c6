"""Detections to and from supervision (the `video` extra): boxes, scores, class indices and
names survive a round trip; boxes known only by name come back with their indices; and
`import centernet` (and its Detections) never imports supervision."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from centernet.errors import CenterNetError, MissingDependencyError
from centernet.types import Detections

NAMES = ["circle", "square", "triangle"]


@pytest.fixture
def found() -> Detections:
    return Detections(
        xyxy=np.array([[1, 2, 30, 40], [5.5, 6.25, 7, 80], [0, 0, 9, 9]], np.float32),
        scores=np.array([0.9, 0.5, 0.25], np.float32),
        class_ids=np.array([2, 0, 7], np.int64),  # 7: beyond the names
    )


def test_round_trip_keeps_boxes_scores_classes_and_names(found):
    sv = pytest.importorskip("supervision")
    converted = found.to_supervision(NAMES)
    assert isinstance(converted, sv.Detections) and len(converted) == 3
    np.testing.assert_array_equal(converted.xyxy, found.xyxy)
    np.testing.assert_array_equal(converted.confidence, found.scores)
    np.testing.assert_array_equal(converted.class_id, found.class_ids)
    assert list(converted.data["class_name"]) == ["triangle", "circle", "7"]
    back = Detections.from_supervision(converted)
    for a, b in zip((back.xyxy, back.scores, back.class_ids), (found.xyxy, found.scores,
                                                                found.class_ids)):  # fmt: skip
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert "class_name" not in found.to_supervision().data
    empty = Detections.from_supervision(found[np.zeros(3, bool)].to_supervision(NAMES))
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4)


def test_from_supervision_sorts_and_reads_names(found):
    sv = pytest.importorskip("supervision")
    named = sv.Detections(
        xyxy=found.xyxy[::-1].copy(),
        confidence=None,
        data={"class_name": np.array(["square", "triangle", "circle"])},
    )
    back = Detections.from_supervision(named, NAMES)
    assert back.scores.tolist() == [1.0, 1.0, 1.0] and back.class_ids.tolist() == [1, 2, 0]
    shuffled = sv.Detections(found.xyxy[::-1].copy(), confidence=found.scores[::-1].copy(),
                             class_id=found.class_ids[::-1].copy())  # fmt: skip
    assert Detections.from_supervision(shuffled).scores.tolist() == found.scores.tolist()
    with pytest.raises(CenterNetError, match="no class_id"):
        Detections.from_supervision(named)
    with pytest.raises(CenterNetError, match="square"):
        Detections.from_supervision(named, ["circle", "triangle"])


def test_without_supervision_the_extra_is_named(found, monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)  # `import supervision` fails
    with pytest.raises(MissingDependencyError, match=r"centernet-deploy\[video\]"):
        found.to_supervision(NAMES)


def test_import_centernet_stays_light():
    code = (
        "import sys, centernet\n"
        "from centernet import Detections\n"
        "heavy = {'supervision', 'torch', 'onnxruntime', 'openvino', 'cv2'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
