"""Shared fixtures: a tiny DLA model, its checkpoint and ONNX exports, and real photos."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from tests.helpers import TINY_CLASSES, TINY_WIDTH, export_tiny, make_tiny_network


@pytest.fixture(scope="session", autouse=True)
def _temporary_cache(tmp_path_factory):
    """Engines cache compiled models in a temporary folder, not in the user's ~/.cache."""
    import os

    from centernet.engines.openvino import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def photo_paths() -> list[Path]:
    """Real photographs bundled with the package (copied from shared/data/photos)."""
    folder = resources.files("centernet.assets") / "photos"
    paths = sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".jpg"))
    assert paths, "package assets hold no photos"
    return paths




@pytest.fixture(scope="session")
def tiny_network():
    return make_tiny_network()


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_network, tmp_path_factory) -> Path:
    from centernet.models.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_checkpoint(
        path,
        tiny_network,
        epoch=1,
        arch="dlav0_34",
        arch_args={"width": TINY_WIDTH},
        class_names=TINY_CLASSES,
    )
    return path




@pytest.fixture(scope="session")
def tiny_onnx_dynamic(tiny_network, tmp_path_factory) -> Path:
    """Dynamic batch and spatial size: runs fix_res, keep_res and any batch."""
    path = tmp_path_factory.mktemp("onnx") / "tiny_dynamic.onnx"
    return export_tiny(tiny_network, path, dynamic_batch=True, dynamic_size=True)


@pytest.fixture(scope="session")
def tiny_onnx_batch2(tiny_network, tmp_path_factory) -> Path:
    """Static batch 2: exercises padding of a short last batch."""
    path = tmp_path_factory.mktemp("onnx") / "tiny_b2.onnx"
    return export_tiny(tiny_network, path, batch=2)
