"""`centernet build`'s options are generated from the build settings: its --help shows the
dataclasses' own defaults, choices and help, and parsed arguments give the settings back."""

from __future__ import annotations

import re
import typing
from dataclasses import MISSING, fields, is_dataclass

import pytest

from centernet.cli.config_args import config_from_arguments
from centernet.cli.parser import build_parser
from centernet.config_fields import described
from centernet.quantize.config import BuildConfig, CalibrationConfig, FinetuneConfig, SearchConfig


def flagged(cls: type):
    """(field, declaration) of every field with a flag, nested settings included."""
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        nested = next(
            (a for a in (typing.get_args(hints[item.name]) or (hints[item.name],))
             if isinstance(a, type) and is_dataclass(a)),
            None,
        )  # fmt: skip
        if nested is not None:
            yield from flagged(nested)
        elif (declared := described(item)) and declared["flag"]:
            yield item, declared


def build_help() -> str:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    text = subparsers.choices["build"].format_help()
    return re.sub(r"\s+", " ", text[text.index("options:") :])  # after the usage line


def test_build_help_shows_every_dataclass_default_and_choice():
    text = build_help()
    checked = 0
    for item, declared in flagged(BuildConfig):
        flag = declared["flag"]
        assert flag in text, flag
        default = item.default
        if default is MISSING or default is None or declared["enables"] or declared["required"]:
            continue
        if isinstance(default, bool) or default == ():
            continue  # flags: their presence is the setting
        after = text[text.index(f"{flag} "):]
        assert re.search(rf"\(default: {re.escape(str(default))}\)", after[:900]), flag
        checked += 1
        for choice in declared["choices"] or ():
            assert choice in after[:300]
    assert checked >= 12  # the calibration count, the search's, fine-tuning's, NNCF's


def test_parsed_arguments_give_the_settings_back():
    args = build_parser().parse_args([
        "build", "m.onnx", "-o", "o.onnx", "--precision", "int8-mixed", "--calib-images", "c",
        "--calib-method", "percentile", "--calib-percentile", "99.9", "--max-drop", "0.01",
        "--keep-float", "a, b", "--qat-steps", "20", "--qat-lr", "1e-5",
    ])  # fmt: skip
    config = config_from_arguments(BuildConfig, args)
    assert config.calibration == CalibrationConfig("c", method="percentile", percentile=99.9)
    assert config.search == SearchConfig(max_drop=0.01)
    assert config.finetune == FinetuneConfig(steps=20, lr=1e-5)
    assert config.keep_float_layers == ("a", "b")
    args = build_parser().parse_args(["build", "m.onnx", "-o", "o", "--precision", "fp16"])
    plain = config_from_arguments(BuildConfig, args)
    assert plain == BuildConfig("fp16")  # no option given: every declared default


@pytest.mark.parametrize("bad", [["--calib-count", "0"], ["--calib-method", "kl"]])
def test_out_of_range_options_are_refused_by_the_parser(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["build", "m.onnx", "-o", "o", "--precision", "int8", *bad])
    assert "--calib-" in capsys.readouterr().err
