"""Shared fixtures: a tiny DLA model, its checkpoint and ONNX exports, and real photos."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

TINY_WIDTH = 0.25  # DLA-34 with a quarter of the channels: same code path, milliseconds
TINY_CLASSES = ["circle", "square", "triangle"]
TINY_SIZE = (128, 128)


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


def make_tiny_network(num_classes: int = len(TINY_CLASSES), seed: int = 0):
    import torch

    from centernet.models import create_model, settle_batchnorm

    torch.manual_seed(seed)
    network = create_model("dlav0_34", num_classes, width=TINY_WIDTH)
    with torch.no_grad():  # boxes of a few cells and mid-cell centres, as a trained model gives
        network.wh[2].bias.fill_(6.0)
        network.reg[2].bias.fill_(0.5)
    return settle_batchnorm(network, TINY_SIZE)


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


def export_tiny(network, path: Path, **config_kwargs) -> Path:
    from centernet.export import ExportConfig, export_onnx
    from centernet.types import ModelSpec

    spec = ModelSpec(
        arch="dlav0_34",
        num_classes=len(TINY_CLASSES),
        class_names=TINY_CLASSES,
        input_size=TINY_SIZE,
        extra={"arch_args": {"width": TINY_WIDTH}},
    )
    export_onnx(network, path, spec, ExportConfig(**config_kwargs))
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
