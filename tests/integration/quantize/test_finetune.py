"""Label-free quantization-aware fine-tuning (``build --qat-steps``) on the tiny model: the
torch network rebuilt from the export computes what the export computes, and the
fine-tuned int8 build is closer to the float model's outputs than plain int8."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from centernet.engines import open_engine
from centernet.modelfile.spec import load_centernet_onnx
from centernet.quantize.config import BuildConfig, CalibrationConfig
from centernet.quantize.float_layers import int8_conv_names
from centernet.quantize.recipe import build
from centernet.quantize.search_scoring import output_error
from centernet.runtime.images import read_image
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into
from tests.helpers import TINY_SIZE

pytest.importorskip("nncf", reason="fine-tuning quantizes the torch model with NNCF")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def calib_dir(photo_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for p in photo_paths[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


def inputs(paths) -> np.ndarray:
    config = PreprocessConfig(input_size=TINY_SIZE)
    return np.stack([preprocess_into(read_image(p), config)[0] for p in paths])


def test_the_network_rebuilt_from_the_export_computes_what_it_computes(
    tiny_onnx_dynamic, photo_paths
):
    from centernet.quantize.finetune import network_from_onnx

    model, spec = load_centernet_onnx(tiny_onnx_dynamic)
    network = network_from_onnx(model, spec)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules())  # folded
    x = inputs(photo_paths[:2])
    want = open_engine(tiny_onnx_dynamic)(x)
    with torch.no_grad():
        got = network(torch.from_numpy(x))
    np.testing.assert_allclose(torch.sigmoid(got["hm"]).numpy(), want["hm"], atol=1e-5)
    np.testing.assert_allclose(got["wh"].numpy(), want["wh"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["reg"].numpy(), want["reg"], rtol=1e-4, atol=1e-4)


def test_fake_quantizers_run_as_plain_torch_and_round_to_the_grid():
    """Fine-tuning swaps NNCF's compiled quantizer extension (a minute of C++ compile on
    first use) for NNCF's torch reference: the swap must happen with this NNCF, and the
    quantizer must still snap to its int8 grid, clip, and pass gradients straight through
    inside the range only."""
    from nncf.torch.quantization.quantize_functions import QuantizeAsymmetric

    from centernet.quantize.finetune import plain_torch_quantizers

    low, width, levels = -0.5, 2.55, 256  # a whole zero point (50), as NNCF tunes ranges
    x = torch.linspace(-1.0, 3.0, 401, requires_grad=True)
    with plain_torch_quantizers() as swapped:
        y = QuantizeAsymmetric.apply(x, torch.tensor(low), torch.tensor(width), 0, 255, levels)
        y.sum().backward()
    assert swapped, "NNCF's quantizer internals moved: fine-tuning would compile its extension"
    step = width / (levels - 1)
    xs, ys = x.detach().numpy(), y.detach().numpy()
    inside = (xs >= low) & (xs <= low + width)
    np.testing.assert_allclose(ys / step, np.round(ys / step), atol=1e-3)  # zero on the grid
    assert np.all(np.abs(ys - np.clip(xs, low, low + width)) <= step / 2 + 1e-5)  # nearest
    np.testing.assert_array_equal(x.grad.numpy(), inside.astype(np.float32))


def test_fine_tuning_lowers_the_int8_error_against_the_float_outputs(
    tiny_onnx_dynamic, calib_dir, tmp_path
):
    from centernet.quantize.config import FinetuneConfig

    # the extremes of 3 images: the mean of per-image extremes (the default) clips part of
    # the very images both builds are judged on, which fine-tuning does not try to undo
    calibration = CalibrationConfig(str(calib_dir), 3, method="minmax")
    plain = build(tiny_onnx_dynamic, tmp_path / "int8.onnx", BuildConfig("int8", calibration))
    tuned = build(
        tiny_onnx_dynamic,
        tmp_path / "qat.onnx",
        BuildConfig(
            "int8",
            calibration,
            finetune=FinetuneConfig(steps=40, batch=3, crop=0, lr=2e-5),
        ),
    )
    x = inputs(sorted(calib_dir.iterdir()))  # what it learned to reproduce, without labels
    want = open_engine(tiny_onnx_dynamic)(x)
    # on ONNX Runtime, whose QDQ arithmetic (uint8 activations with zero points, int8
    # weights) the fake-quantized training copy reproduces: OpenVINO's int8 kernels round
    # differently by CPU (on an AVX2-only Zen 3 the same two builds measured 0.0094 ->
    # 0.0090 on OpenVINO, 0.0109 -> 0.0092 on ONNX Runtime)
    before = output_error(open_engine(plain.path, "onnxruntime")(x), want, 0.3)
    after = output_error(open_engine(tuned.path, "onnxruntime")(x), want, 0.3)
    assert after < 0.9 * before, (before, after)
    assert tuned.finetune is not None and tuned.finetune.loss_end < tuned.finetune.loss_start
    # the same QDQ graph: the same convolutions int8, the same ones float, for any runtime
    assert int8_conv_names(onnx.load(str(tuned.path))) == int8_conv_names(
        onnx.load(str(plain.path))
    )
    assert [k.node for k in tuned.kept] == [k.node for k in plain.kept]
    recorded = tuned.spec.extra["finetune"]
    assert recorded["steps"] == 40 and recorded["loss_end"] < recorded["loss_start"]
    openvino = pytest.importorskip("openvino")
    assert openvino is not None
    np.testing.assert_allclose(  # OpenVINO runs it too, to int8 rounding
        open_engine(tuned.path, "openvino")(x)["hm"], open_engine(tuned.path)(x)["hm"], atol=0.1
    )


def test_fine_tuning_that_does_not_help_on_held_out_images_is_not_used(
    tiny_onnx_dynamic, calib_dir, tmp_path
):
    """A learning rate that wrecks the weights: the held-out image shows it, and the build
    is plain int8 again (the same outputs as a build without fine-tuning)."""
    from centernet.quantize.config import FinetuneConfig

    # the extremes of 3 images: the mean of per-image extremes (the default) clips part of
    # the very images both builds are judged on, which fine-tuning does not try to undo
    calibration = CalibrationConfig(str(calib_dir), 3, method="minmax")
    plain = build(tiny_onnx_dynamic, tmp_path / "int8.onnx", BuildConfig("int8", calibration))
    wrecked = build(
        tiny_onnx_dynamic,
        tmp_path / "qat.onnx",
        BuildConfig(
            "int8",
            calibration,
            finetune=FinetuneConfig(steps=5, batch=2, crop=0, lr=1.0, holdout=1),
        ),
    )
    tuned = wrecked.finetune
    assert tuned is not None and tuned.holdout_images == 1 and tuned.images == 2
    assert tuned.holdout_after > tuned.holdout_before and not tuned.applied
    x = inputs(sorted(calib_dir.iterdir()))
    got, want = open_engine(wrecked.path)(x), open_engine(plain.path)(x)
    for name in ("hm", "wh", "reg"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)
