"""Small modules with one job: no source file over 500 lines without a reason written at its
top, no function over 80 lines (split where a name would explain a part)."""

from __future__ import annotations

import ast
from pathlib import Path

import centernet

ROOT = Path(centernet.__file__).parent
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
#: What a long file says in its first 40 lines to explain why it stays one file.
LONG_FILE_REASON = "Why one file:"


def test_no_long_source_file_without_a_reason():
    long = [
        f"{path.relative_to(ROOT)}: {count} lines"
        for path in sorted(ROOT.rglob("*.py"))
        if (count := path.read_text().count("\n")) > MAX_FILE_LINES
        and LONG_FILE_REASON not in "\n".join(path.read_text().splitlines()[:40])
    ]
    assert not long, long


def test_no_long_function():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines}")
    assert not long, long
