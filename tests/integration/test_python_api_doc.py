"""docs/python-api.md's examples run as written (the bundled model, a bundled photo,
supervision's annotators), one block after the other, in a fresh folder."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from centernet.types import Detections

PAGE = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def test_the_python_api_page_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")  # the bundled model is a checkpoint
    pytest.importorskip("supervision")
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.M | re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    assert len(printed.getvalue().splitlines()) == len(namespace["found"]) > 0
    assert (tmp_path / "annotated.jpg").stat().st_size > 10_000
    confident = namespace["confident"]
    assert isinstance(confident, Detections) and 0 < len(confident) <= len(namespace["found"])
    assert (confident.scores > 0.5).all()
