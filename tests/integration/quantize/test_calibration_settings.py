"""Each calibration setting on each back end is honoured (the quantization ranges change
as asked) or refused with a clear error naming it; nothing is accepted and ignored.

Ranges are read from the written files: the QDQ graph's activation scales and zero
points, the IR's weights file (its FakeQuantize ranges live there). On the tiny model,
two calibration images."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from centernet.errors import CenterNetError
from centernet.quantize.config import BuildConfig, CalibrationConfig
from centernet.quantize.recipe import build


@pytest.fixture(scope="module")
def calib_dir(photo_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for p in photo_paths[:3]:
        shutil.copy(p, folder / p.name)
    return folder


def qdq_ranges(path) -> dict[str, np.ndarray]:
    """Activation scales and zero points of a QDQ graph (weights' are per channel and
    do not depend on calibration)."""
    model = onnx.load(str(path))
    weights = {i.name for i in model.graph.initializer if len(i.dims) == 4}
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    ranges = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in weights:
            ranges[node.input[0]] = np.concatenate(
                [consts[node.input[1]].ravel(), consts[node.input[2]].ravel().astype(float)]
            )
    return ranges


def ir_ranges(path) -> bytes:
    return path.with_suffix(".bin").read_bytes()


BACKENDS = {"onnx": (".onnx", qdq_ranges), "openvino": (".xml", ir_ranges)}


def built(tiny, tmp_path, target, calibration: CalibrationConfig, name: str):
    suffix, ranges = BACKENDS[target]
    result = build(tiny, tmp_path / f"{name}{suffix}", BuildConfig("int8", calibration))
    return result, ranges(result.path)


def same(a, b) -> bool:
    if isinstance(a, bytes):
        return a == b
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# (setting, value changes) on each back end: "honoured" (the ranges differ from the
# default build's), or the message of its refusal
CASES = {
    "onnx": {
        "method=minmax": ({"method": "minmax"}, "honoured"),
        "method=minmax-ma": ({"method": "minmax-ma"}, "the default"),
        # the tiny random model's narrow ranges need fewer than the default 2048 bins
        "method=percentile": ({"method": "percentile", "bins": 256}, "honoured"),
        "percentile": (
            {"method": "percentile", "percentile": 99.0, "bins": 256}, "honoured vs percentile"
        ),
        "method=entropy": ({"method": "entropy", "bins": 256}, "honoured"),
        "bins": ({"method": "entropy", "bins": 192}, "honoured vs entropy"),
        "count": ({"count": 1}, "honoured"),
        "bins without a histogram": ({"bins": 64}, "`calibration.bins` is not used"),
    },
    "openvino": {
        "method=minmax": ({"method": "minmax"}, "honoured"),
        "method=minmax-ma": ({"method": "minmax-ma"}, "the default"),
        "method=percentile": ({"method": "percentile"}, "honoured"),
        "percentile": ({"method": "percentile", "percentile": 99.0}, "honoured vs percentile"),
        "count": ({"count": 1}, "honoured"),
        "method=entropy": ({"method": "entropy"}, "no NNCF counterpart"),
        "bins": ({"method": "percentile", "bins": 64}, "`calibration.bins` is not used"),
        "ranges_file": ({"ranges_file": "r.json"}, "`calibration.ranges_file` is not used"),
    },
}


@pytest.fixture(scope="module")
def reference_ranges(tiny_onnx_dynamic, tmp_path_factory):
    """The ranges of a reference build, built once per (back end, settings): several
    cases compare against the same default build."""
    cache: dict[tuple[str, CalibrationConfig], object] = {}

    def ranges_of(target: str, calibration: CalibrationConfig):
        key = (target, calibration)
        if key not in cache:
            folder = tmp_path_factory.mktemp("reference")
            cache[key] = built(tiny_onnx_dynamic, folder, target, calibration, "reference")[1]
        return cache[key]

    return ranges_of


@pytest.mark.parametrize(
    ("target", "setting"), [(t, s) for t, cases in CASES.items() for s in cases]
)
def test_each_calibration_setting_is_honoured_or_refused(
    tiny_onnx_dynamic, calib_dir, tmp_path, target, setting, reference_ranges
):
    changes, expected = CASES[target][setting]
    base = CalibrationConfig(str(calib_dir), 2)
    asked = replace(base, **changes)
    if not expected.startswith(("honoured", "the default")):
        out = tmp_path / f"x{BACKENDS[target][0]}"
        with pytest.raises(CenterNetError, match=expected):
            build(tiny_onnx_dynamic, out, BuildConfig("int8", asked))
        return
    _, got = built(tiny_onnx_dynamic, tmp_path, target, asked, "asked")
    reference = base
    if expected.startswith("honoured vs "):  # the same method at its default tuning
        method = expected.split()[-1]
        histogram = target == "onnx" and method in ("entropy", "percentile")
        reference = replace(base, method=method, bins=256 if histogram else None)
    default = reference_ranges(target, reference)
    if expected == "the default":
        assert same(got, default)  # the default is this method
    else:
        assert not same(got, default)


def test_the_ranges_file_is_honoured_by_the_qdq_build(tiny_onnx_dynamic, calib_dir, tmp_path):
    """Written by the first build, read by the next, whose own images then do not count."""
    ranges = tmp_path / "ranges.json"
    first = CalibrationConfig(str(calib_dir), 2, ranges_file=str(ranges))
    a, got_a = built(tiny_onnx_dynamic, tmp_path, "onnx", first, "a")
    b, got_b = built(tiny_onnx_dynamic, tmp_path, "onnx", replace(first, count=1), "b")
    assert ranges.is_file() and not a.ranges_reused and b.ranges_reused and same(got_a, got_b)
