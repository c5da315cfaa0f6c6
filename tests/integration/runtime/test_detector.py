"""Detector end to end on a tiny model: engines agree, batching is invisible, bad files skip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from centernet.errors import CenterNetError, ImageReadError
from centernet.runtime.detector import Detector
from centernet.runtime.postprocess import postprocess
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into
from tests.helpers import TINY_SIZE, assert_detections_close, write_bad_and_odd_images


def test_detector_equals_manual_pipeline(tiny_onnx_dynamic, photo_paths):
    detector = Detector(tiny_onnx_dynamic)
    image = cv2.imread(str(photo_paths[0]))
    got = detector(image)
    config = PreprocessConfig(input_size=TINY_SIZE)
    x, box = preprocess_into(image, config)
    expected = postprocess(detector.engine(x[None]), [box])[0]
    assert len(got) == 100
    assert np.array_equal(got.xyxy, expected.xyxy) and np.array_equal(got.scores, expected.scores)
    # A path gives the same as the decoded array; a list gives a list.
    assert np.array_equal(detector(str(photo_paths[0])).xyxy, got.xyxy)
    both = detector([image, photo_paths[1]])
    assert isinstance(both, list) and len(both) == 2


def test_onnx_and_torch_engines_agree(tiny_onnx_dynamic, tiny_checkpoint, photo_paths):
    pytest.importorskip("torch")
    from centernet.engines import EngineConfig

    onnx_detector = Detector(tiny_onnx_dynamic)
    torch_detector = Detector(tiny_checkpoint, options=EngineConfig(input_size=TINY_SIZE))
    assert torch_detector.engine.name == "torch"
    assert torch_detector.spec.class_names == onnx_detector.spec.class_names
    for a, b in zip(onnx_detector(photo_paths), torch_detector(photo_paths)):
        assert_detections_close(a, b)


def test_batch_size_does_not_change_detections(tiny_onnx_dynamic, tiny_onnx_batch2, photo_paths):
    paths = photo_paths[:3]
    one = Detector(tiny_onnx_dynamic, batch_size=1)(paths)
    three = Detector(tiny_onnx_dynamic, batch_size=3)(paths)
    static2 = Detector(tiny_onnx_batch2)  # 3 images: the second batch is padded
    assert static2.batch_size == 2
    padded = static2(paths)
    for a, b, c in zip(one, three, padded):
        assert_detections_close(a, b, atol=1e-4)
        assert_detections_close(a, c, atol=1e-4)
    with pytest.raises(CenterNetError, match="built for batch 2"):
        Detector(tiny_onnx_batch2, batch_size=4)


def test_bad_files_are_reported_in_place(tiny_onnx_dynamic, photo_paths, tmp_path):
    cases = write_bad_and_odd_images(tmp_path, photo_paths[0])
    big = np.zeros((10000, 10000, 3), np.uint8)
    big[4000:6000, 3000:7000] = (40, 180, 250)
    cv2.imwrite(str(tmp_path / "huge.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 50])
    cases["huge.jpg"] = None
    names = list(cases)
    sources = [str(photo_paths[1])] + [str(tmp_path / n) for n in names] + [str(photo_paths[2])]
    results = list(Detector(tiny_onnx_dynamic, batch_size=4).stream(sources))
    assert [r.source for r in results] == sources
    assert results[0].ok and results[-1].ok
    for name, result in zip(names, results[1:-1]):
        if cases[name] is None:
            assert result.ok and result.detections is not None and len(result.detections), name
            h, w = result.image.shape[:2]
            assert np.all(result.detections.xyxy[:, :2] > -w) and np.all(
                result.detections.xyxy[:, 2:] < 2 * w
            )
        else:
            assert not result.ok and cases[name] in result.error, name
    with pytest.raises(ImageReadError, match="empty file"):
        Detector(tiny_onnx_dynamic)(str(tmp_path / "empty.jpg"))


def test_keep_res(tiny_onnx_dynamic, tiny_onnx_batch2, photo_paths):
    image = cv2.imread(str(photo_paths[0]))
    detector = Detector(tiny_onnx_dynamic, keep_res=True, batch_size=4)
    got = detector([image, image[:300, :500]])
    x, box = preprocess_into(image, PreprocessConfig(keep_res=True))
    assert box.input_size == ((image.shape[1] | 31) + 1, (image.shape[0] | 31) + 1)
    expected = postprocess(detector.engine(x[None]), [box])[0]
    assert_detections_close(got[0], expected, atol=1e-4)
    assert len(got[1]) == 100
    with pytest.raises(CenterNetError, match="`dynamic_size`"):
        Detector(tiny_onnx_batch2, keep_res=True)


def test_threshold(tiny_onnx_dynamic, photo_paths):
    every = Detector(tiny_onnx_dynamic)(photo_paths[0])
    cut = float(np.median(every.scores))
    some = Detector(tiny_onnx_dynamic, threshold=cut)(photo_paths[0])
    assert 0 < len(some) < len(every) and some.scores.min() >= cut
    assert np.array_equal(some.xyxy, every.xyxy[: len(some)])


def test_onnx_inference_never_imports_torch(tiny_onnx_dynamic, photo_paths):
    import subprocess
    import sys

    code = (
        "import sys; from centernet import Detector; "
        f"d = Detector({str(tiny_onnx_dynamic)!r}); d({str(photo_paths[0])!r}); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
