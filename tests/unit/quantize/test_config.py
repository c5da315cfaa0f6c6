"""Build settings: every value outside its choices is refused, and every setting the chosen
precision and back end would not use is refused by name, before anything is read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from centernet.errors import CenterNetError, as_command_line
from centernet.quantize.config import (
    BuildConfig,
    BuildTarget,
    CalibrationConfig,
    FinetuneConfig,
    NncfConfig,
    SearchConfig,
    check_build_config,
    resolve_target,
)

CALIB = CalibrationConfig("calib")
#: the three kinds of file a build writes
TARGETS = {
    "ort": BuildTarget("onnxruntime"),
    "ir": BuildTarget("openvino", ir=True),
}


def refused(config: BuildConfig, target: str) -> str:
    with pytest.raises(CenterNetError) as caught:
        check_build_config(config, TARGETS[target])
    return str(caught.value)


def test_the_defaults_of_each_precision_pass_on_both_targets():
    for target in TARGETS.values():
        for precision in ("fp32", "fp16"):
            check_build_config(BuildConfig(precision), target)
        for precision in ("int8", "int8-mixed"):
            check_build_config(BuildConfig(precision, CALIB), target)


@pytest.mark.parametrize(
    ("config", "target", "named"),
    [
        (BuildConfig("fp16", CALIB), "ort", "`calibration`"),
        (BuildConfig("fp32", keep_float_layers=("a",)), "ort", "`keep_float_layers`"),
        (BuildConfig("int8", replace(CALIB, percentile=99.9)), "ort", "`calibration.percentile`"),
        (BuildConfig("int8", replace(CALIB, bins=512)), "ort", "`calibration.bins`"),
        (
            BuildConfig("int8", replace(CALIB, method="percentile", bins=512)),
            "ir",
            "`calibration.bins`",
        ),
        (BuildConfig("int8", replace(CALIB, ranges_file="r.json")), "ir", "ranges_file"),
        (BuildConfig("int8", CALIB, search=SearchConfig(max_drop=0.01)), "ort", "max_drop"),
        (BuildConfig("int8", CALIB, search=SearchConfig(annotations="a.json")), "ort", "annot"),
        (
            BuildConfig("int8-mixed", CALIB, search=SearchConfig("nncf", min_error_cut=0.1)),
            "ir",
            "`search.min_error_cut`",
        ),
        (
            BuildConfig("int8-mixed", CALIB, search=SearchConfig("sqnr", max_drop=0.01)),
            "ort",
            "`search.max_drop`",
        ),
        (BuildConfig("int8", CALIB, nncf=NncfConfig(bias_correction="full")), "ort", "nncf."),
        (BuildConfig("fp16", nncf=NncfConfig(preset="mixed")), "ir", "`nncf.preset`"),
    ],
)
def test_a_setting_the_build_would_not_use_is_refused_by_name(config, target, named):
    message = refused(config, target)
    assert named in message and "is not used by" in message


@pytest.mark.parametrize(
    ("config", "target", "match"),
    [
        (BuildConfig("int8"), "ort", "needs calibration images"),
        (BuildConfig("int9"), "ort", "unknown `precision` 'int9'"),
        (BuildConfig("int8", replace(CALIB, method="kl")), "ort", "unknown `calibration.method`"),
        (BuildConfig("int8", replace(CALIB, method="entropy")), "ir", "no NNCF counterpart"),
        (BuildConfig("int8-mixed", CALIB, search=SearchConfig("sqnr")), "ir", "older rule"),
        (BuildConfig("int8", replace(CALIB, count=0)), "ort", "must be at least 1"),
        (
            BuildConfig("int8", replace(CALIB, method="entropy", bins=64)),
            "ort",
            "must be above 128 for the entropy method",
        ),
        (BuildConfig("int8-mixed", CALIB, search=SearchConfig("nncf")), "ort", "OpenVINO IRs"),
        (BuildConfig("int8", CALIB, finetune=FinetuneConfig()), "ir", "QDQ .onnx"),
        (BuildConfig("fp32", batch=2, dynamic_batch=True), "ort", "exclude each other"),
    ],
)
def test_impossible_settings_are_refused(config, target, match):
    assert match in refused(config, target)


def test_refusals_read_as_flags_on_the_command_line():
    from centernet.cli.parser import build_parser

    build_parser()  # registers the generated options' flags
    message = refused(BuildConfig("int8", replace(CALIB, bins=512)), "ort")
    assert "--calib-bins" in as_command_line(message)
    message = refused(BuildConfig("int8", CALIB, search=SearchConfig(max_layers=2)), "ort")
    assert "--mixed-max-layers" in as_command_line(message)


def test_the_calibration_method_defaults_to_the_mean_of_each_images_extremes_everywhere():
    assert CALIB.method_for("onnxruntime") == "minmax-ma"
    assert CALIB.method_for("openvino") == "minmax-ma"
    assert replace(CALIB, method="percentile").describe("openvino") == {
        "images": "calib", "method": "percentile", "percentile": 99.999
    }  # fmt: skip


def test_the_output_suffix_decides_the_kind_of_file():
    assert resolve_target("m.onnx") == TARGETS["ort"]
    assert resolve_target("m.XML") == TARGETS["ir"]
