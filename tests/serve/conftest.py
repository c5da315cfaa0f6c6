"""A running server on the tiny model, on a free loopback port, stopped after the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from centernet.serve.service import DetectionService  # noqa: E402
from tests.serve.helpers import RunningServer, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_onnx_dynamic) -> Iterator[RunningServer]:
    with RunningServer(DetectionService(tiny_config(tiny_onnx_dynamic))) as running:
        yield running


