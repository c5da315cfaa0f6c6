"""Every `centernet ...` command line in README.md and docs/*.md parses with the real
argument parser (nothing is run), so a renamed or removed flag fails here, not for the
reader; a deprecated spelling fails too.

Command lines come from fenced code blocks (backslash continuations joined; in a synopsis,
an indented line continues the command above) and from inline code. Synopsis notation is
read, not skipped: ``[optional parts]`` are included, ``a|b`` and ``[--x N | --y]``
alternatives and ``{a,b}`` choices are each tried (one variant per alternative),
``NAME...`` is one ``NAME``, and an ALL-CAPS placeholder given to an option is replaced
by a value that option accepts (its first choice, or a sample its type takes). A command
in prose (inline code) or one with a ``...`` elision may leave out required arguments:
every word it does give must still parse. Text that is none of this and that the parser
cannot take goes in ``NOT_ARGUMENTS``, with the reason.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from centernet.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Words in documented command lines that are not arguments, dropped before parsing (keep
#: this small: anything else a reader would type must parse).
NOT_ARGUMENTS = {
    "[same options]",  # docs/commands.md: the stream synopsis refers to the video line above
}

PLACEHOLDER = re.compile(r"^[A-Z][A-Za-z0-9_:.]*$")  # MODEL, DIR, N, MIN:MAX, HxW, CKPT.pth
SAMPLES = ("x", "1", "0.5", "1,4", "512", "1:2")
PREFIX = re.compile(r"^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:time\s+)?")


@dataclass(frozen=True)
class Documented:
    """One command line as a document shows it."""

    path: Path
    line: int
    text: str  # from "centernet" on, one line
    strict: bool  # a full command (a code block): required arguments must be there

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.text}"


def commands_in(path: Path) -> list[Documented]:
    """The centernet command lines of one Markdown file, from code blocks and inline code."""
    text = path.read_text(encoding="utf-8")
    found: list[Documented] = []
    prose = text
    for block in re.finditer(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
        first = text.count("\n", 0, block.start(1)) + 1
        found += _block_commands(path, block.group(1), first)
        prose = prose.replace(block.group(0), "\n" * block.group(0).count("\n"))
    for span in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        if "\n\n" in span.group(1):
            continue
        line = prose.count("\n", 0, span.start()) + 1
        for segment in _segments(" ".join(span.group(1).split())):
            found.append(Documented(path, line, segment, strict=False))
    return found


def _block_commands(path: Path, block: str, first: int) -> list[Documented]:
    """Logical lines of a code block (continuations joined), their centernet commands."""
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(block.splitlines(), start=first):
        joining = logical and logical[-1][1].endswith("\\")
        synopsis = logical and raw[:1].isspace() and raw.strip() and "centernet" in logical[-1][1]
        if joining or synopsis:
            start, previous = logical[-1]
            logical[-1] = (start, previous.removesuffix("\\").rstrip() + " " + raw.strip())
        else:
            logical.append((number, raw.strip()))
    return [
        Documented(path, number, segment, strict=True)
        for number, text in logical
        for segment in _segments(text)
    ]


def _segments(text: str) -> list[str]:
    """The centernet commands of a shell line: split at && || ; and a pipe (a top-level
    `|` before a word that is not an option), comments and trailing remarks dropped."""
    text = re.sub(r"\s#.*$", "", text)
    text = re.sub(r"\s{2,}\([^()]*\)\s*$", "", text)  # "   (videos and images may be mixed)"
    for words in NOT_ARGUMENTS:
        text = text.replace(words, " ")
    found = []
    for part in re.split(r"&&|\|\||;|\s\|\s(?!-)", text):
        part = PREFIX.sub("", part.strip())
        part = re.sub(r"^python3? -m centernet(?:\.cli)?\b", "centernet", part)
        if re.match(r"^centernet\s+[-\w]", part):
            found.append(part.strip())
    return found


def variants(text: str) -> tuple[list[list[str]], bool]:
    """The argument lists a synopsis line stands for (without "centernet"), and whether it
    elides words (``...``)."""
    tokens = shlex.split(text)[1:]
    elided = "..." in tokens
    tokens = [t for t in tokens if t != "..."]
    tree = _grouped(tokens)
    count = max(_alternatives(tree), 1)
    return [_flatten(tree, k) for k in range(count)], elided


def _grouped(tokens: list[str]) -> list:
    """Tokens into a tree: ``[ ... ]`` groups become lists of alternatives (split at `|`)."""
    stack: list[list] = [[[]]]  # each level: its alternatives, each a list of items
    for token in tokens:
        opened = len(token) - len(token.lstrip("["))
        token = token[opened:]
        for _ in range(opened):
            stack.append([[]])
        closed = len(token) - len(token.rstrip("]")) if not token.startswith("{") else 0
        token = token[: len(token) - closed] if closed else token
        if token == "|":
            if len(stack) == 1:
                break  # a top-level alternative: the rest is not this command's
            stack[-1].append([])
        elif token:
            stack[-1][-1].append(token)
        for _ in range(min(closed, len(stack) - 1)):
            group = stack.pop()
            stack[-1][-1].append(group)
    while len(stack) > 1:  # an unclosed bracket: close it
        group = stack.pop()
        stack[-1][-1].append(group)
    return stack[0][0]


def _choices(token: str) -> list[str]:
    if token.startswith("{") and token.endswith("}"):
        return token[1:-1].split(",")
    return token.split("|") if "|" in token and not token.startswith("-") else [token]


def _alternatives(items: list) -> int:
    count = 1
    for item in items:
        if isinstance(item, list):
            count = max(count, len(item), *(_alternatives(alt) for alt in item))
        else:
            count = max(count, len(_choices(item)))
    return count


def _flatten(items: list, k: int) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, list):
            out += _flatten(item[min(k, len(item) - 1)], k)
        else:
            options = _choices(item)
            out.append(options[min(k, len(options) - 1)].removesuffix("..."))
    return [t for t in out if t]


def with_values(parser: argparse.ArgumentParser, arguments: list[str]) -> list[str]:
    """``arguments`` with each placeholder given to an option replaced by a value it takes."""
    command = next((a for a in arguments if not a.startswith("-")), None)
    sub = _subparsers(parser).get(command or "", parser)
    out = list(arguments)
    for i, word in enumerate(out[:-1]):
        action = sub._option_string_actions.get(word) or parser._option_string_actions.get(word)
        if action is None or action.nargs == 0 or not PLACEHOLDER.match(out[i + 1]):
            continue
        out[i + 1] = _sample(action, out[i + 1])
    return out


def _sample(action: argparse.Action, placeholder: str) -> str:
    if action.choices:
        return str(next(iter(action.choices)))
    for sample in SAMPLES:
        try:
            (action.type or str)(sample)
            return sample
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            continue
    return placeholder


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def relaxed_parser() -> argparse.ArgumentParser:
    """The real parser, with every argument of every command made optional."""
    parser = build_parser()
    for sub in _subparsers(parser).values():
        for action in sub._actions:
            action.required = False
            if not action.option_strings and action.nargs in (None, "+"):
                action.nargs = "?" if action.nargs is None else "*"
        for group in sub._mutually_exclusive_groups:
            group.required = False
    return parser


DOCUMENTED = [command for path in DOCS for command in commands_in(path)]


def test_the_docs_show_commands():
    assert len(DOCUMENTED) >= 20, [str(c) for c in DOCUMENTED]


@pytest.mark.parametrize("documented", DOCUMENTED, ids=str)
def test_documented_command_parses(documented, capsys):
    runs, elided = variants(documented.text)
    strict = documented.strict and not elided
    for arguments in runs:
        parser = build_parser() if strict else relaxed_parser()
        arguments = with_values(parser, arguments)
        try:
            parser.parse_args(arguments)
        except SystemExit as exited:
            message = capsys.readouterr().err.strip().splitlines()[-1:]
            assert exited.code == 0, f"{documented}\n  as {arguments}\n  {message}"
        said = capsys.readouterr().err
        assert "deprecated" not in said, f"{documented}\n  {said.strip()}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "centernet demo [--out DIR] [--image-count 40]",
            [["demo", "--out", "x", "--image-count", "40"]],
        ),
        (
            "centernet export CKPT.pth -o model.onnx [--batch N | --dynamic-batch]",
            [
                ["export", "CKPT.pth", "-o", "model.onnx", "--batch", "1"],
                ["export", "CKPT.pth", "-o", "model.onnx", "--dynamic-batch"],
            ],
        ),
        (
            "centernet detect|eval MODEL [--precision fp32|bf16]",
            [["detect", "MODEL", "--precision", "fp32"], ["eval", "MODEL", "--precision", "bf16"]],
        ),
    ],
)
def test_synopsis_notation_is_read(line, expected):
    runs, _ = variants(line)
    assert [with_values(build_parser(), r) for r in runs] == expected


def test_segments_of_shell_lines():
    line = "pip install -e '.[x]' && time centernet demo --out d | tee log  # a remark"
    assert _segments(line) == ["centernet demo --out d"]
    assert _segments("CI=1 centernet synth --out d -n 2; centernet: error") == [
        "centernet synth --out d -n 2"
    ]
