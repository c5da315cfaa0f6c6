"""The command line's words: every option of every command has help text, a flag name
means one kind of value in every command that has it, and the old spellings of renamed
options still work, hidden, with a one-line notice."""

from __future__ import annotations

import argparse

import pytest

from centernet.cli import build_parser, main
from centernet.cli.common import DeprecatedAlias

#: Flags whose kind of value differs between commands, and why that is one meaning.
SAME_MEANING = {
    # train takes one side (a square input); export a side or HxW
    "--input-size": {"export": "tuple", "train": "int"},
    # go on with a stopped run in --out; train may also name the checkpoint to go on from
    "--resume": {"detect": "switch", "train": "optional"},
}


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"centernet": parser, **sub.choices}


def kind(action: argparse.Action) -> str:
    """What an option takes: a switch, an optional value, or the type its parser returns."""
    if action.nargs == 0:
        return "switch"
    if action.nargs == "?":
        return "optional"
    if action.choices is not None:
        return "choice"
    convert = action.type or str
    for sample in ("2", "512", "1,4", "0.5", "x"):
        try:
            return type(convert(sample)).__name__
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            continue
    raise AssertionError(f"{action.option_strings}: no sample value parses")


def test_every_option_and_argument_of_every_command_has_help():
    for name, parser in commands().items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if action.help == argparse.SUPPRESS:
                assert isinstance(action, DeprecatedAlias), (name, action.option_strings)
                continue
            assert action.help and action.help.strip(), (name, action.option_strings or action.dest)


def test_a_flag_name_takes_one_kind_of_value_in_every_command():
    kinds: dict[str, dict[str, str]] = {}
    for name, parser in commands().items():
        for action in parser._actions:
            if isinstance(action, DeprecatedAlias):
                continue  # an old spelling, going away
            for flag in action.option_strings:
                kinds.setdefault(flag, {})[name] = kind(action)
    for flag, seen in sorted(kinds.items()):
        if len(set(seen.values())) > 1:
            assert SAME_MEANING.get(flag) == seen, (flag, seen)


def test_the_main_help_says_what_detect_takes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("images", "folders", "video files", "stream", "--quiet"):
        assert words in text.split("detect", 1)[1], words


@pytest.mark.parametrize(
    ("command", "old", "new", "value", "dest", "parsed"),
    [
        ("demo", "--images", "--image-count", "8", "image_count", 8),
        ("demo", "--calib-images", "--calib-count", "4", "calib_count", 4),
        ("demo", "--batch", "--batches", "1,2", "batches", [1, 2]),
        ("bench", "--batch", "--batches", "2,8", "batches", [2, 8]),
        ("report", "--batch", "--batches", "4", "batches", [4]),
    ],
)
def test_old_spellings_still_work_and_say_what_replaces_them(
    command, old, new, value, dest, parsed, capsys
):
    required = {
        "bench": ["m.onnx"],
        "report": ["m.onnx", "--images", "d", "--ann", "a", "--out", "o"],
    }
    base = [command, *required.get(command, [])]
    args = build_parser().parse_args([*base, old, value])
    assert getattr(args, dest) == parsed
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{old} of `{command}` is deprecated: use {new}" in err
    assert getattr(build_parser().parse_args([*base, new, value]), dest) == parsed
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    shown = capsys.readouterr().out
    assert new in shown and f"{old} " not in shown.replace(f"{old},", "")


def test_detect_and_eval_write_to_runs_command_by_default():
    detect = build_parser().parse_args(["detect", "m.onnx", "a.jpg"])
    evaluate = build_parser().parse_args(["eval", "m.onnx", "--images", "d", "--ann", "a"])
    assert (detect.out, evaluate.out) == ("runs/detect", "runs/eval")
