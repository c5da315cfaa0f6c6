"""The plain-torch DCNv2 matches a loop-by-loop reference, trains, and exports as DeformConv."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from centernet.models.dcn import DCN, modulated_deform_conv2d  # noqa: E402


def _bilinear(image: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Value of ``image`` (C, H, W) at (y, x); each neighbour outside the image counts as 0."""
    height, width = image.shape[1:]
    y0, x0 = math.floor(y), math.floor(x)
    value = image.new_zeros(image.shape[0])
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                value = value + wy * wx * image[:, yy, xx]
    return value


def _reference(x, offset, mask, weight, bias, stride, padding, dilation, dg):
    """Deliberately naive DCNv2: explicit loops over n, ho, wo, groups and kernel points."""
    n_batch, channels = x.shape[:2]
    out_channels, _, kh, kw = weight.shape
    ho, wo = offset.shape[2:]
    cpg = channels // dg
    out = torch.zeros(n_batch, out_channels, ho, wo, dtype=x.dtype)
    for n in range(n_batch):
        for oy in range(ho):
            for ox in range(wo):
                acc = bias.clone()
                for g in range(dg):
                    chans = slice(g * cpg, (g + 1) * cpg)
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            dy = float(offset[n, g * 2 * kh * kw + 2 * k, oy, ox])
                            dx = float(offset[n, g * 2 * kh * kw + 2 * k + 1, oy, ox])
                            y = oy * stride[0] - padding[0] + i * dilation[0] + dy
                            xx = ox * stride[1] - padding[1] + j * dilation[1] + dx
                            value = _bilinear(x[n, chans], y, xx) * mask[n, g * kh * kw + k, oy, ox]
                            acc = acc + weight[:, chans, i, j] @ value
                out[n, :, oy, ox] = acc
    return out


def _out_size(size: int, stride: int, pad: int, dil: int, kernel: int = 3) -> int:
    return (size + 2 * pad - dil * (kernel - 1) - 1) // stride + 1


def _random_case(batch, channels, out_channels, height, width, stride, padding, dilation, dg):
    gen = torch.Generator().manual_seed(0)
    ho = _out_size(height, stride[0], padding[0], dilation[0])
    wo = _out_size(width, stride[1], padding[1], dilation[1])
    x = torch.randn(batch, channels, height, width, generator=gen)
    offset = torch.rand(batch, dg * 18, ho, wo, generator=gen) * 6 - 3
    # Some offsets integral, so that samples land exactly on pixels and on the border.
    offset[..., ::2, :] = offset[..., ::2, :].round()
    mask = torch.rand(batch, dg * 9, ho, wo, generator=gen)
    weight = torch.randn(out_channels, channels, 3, 3, generator=gen)
    bias = torch.randn(out_channels, generator=gen)
    return x, offset, mask, weight, bias


@pytest.mark.parametrize(
    ("batch", "stride", "padding", "dilation", "dg"),
    [
        (1, (1, 1), (1, 1), (1, 1), 1),
        (1, (2, 2), (1, 1), (1, 1), 1),
        (1, (2, 1), (0, 1), (1, 1), 1),
        (1, (1, 1), (2, 2), (2, 2), 1),
        (1, (1, 1), (1, 1), (1, 1), 2),
        (2, (1, 1), (1, 1), (1, 1), 1),
    ],
)
def test_matches_naive_reference(batch, stride, padding, dilation, dg):
    case = _random_case(batch, 4, 3, 7, 6, stride, padding, dilation, dg)
    got = modulated_deform_conv2d(*case, stride, padding, dilation, dg)
    want = _reference(*case, stride, padding, dilation, dg)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_size_one_axis():
    """A 1-pixel-wide image must not divide by zero when normalising grid coordinates."""
    case = _random_case(1, 2, 2, 5, 1, (1, 1), (1, 1), (1, 1), 1)
    got = modulated_deform_conv2d(*case, (1, 1), (1, 1), (1, 1), 1)
    want = _reference(*case, (1, 1), (1, 1), (1, 1), 1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("stride", "dilation"), [(1, 1), (2, 1), (1, 2)])
def test_zero_offsets_unit_mask_is_conv2d(stride, dilation):
    x, _, _, weight, bias = _random_case(2, 4, 5, 9, 8, (stride,) * 2, (1, 1), (dilation,) * 2, 1)
    want = F.conv2d(x, weight, bias, stride=stride, padding=dilation, dilation=dilation)
    offset = torch.zeros(2, 18, *want.shape[2:])
    mask = torch.ones(2, 9, *want.shape[2:])
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, dilation, dilation)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dg", [1, 2])
def test_dcn_state_dict_matches_original(dg):
    layer = DCN(8, 6, kernel_size=(3, 3), stride=1, padding=1, dilation=1, deformable_groups=dg)
    shapes = {key: tuple(value.shape) for key, value in layer.state_dict().items()}
    assert shapes == {
        "weight": (6, 8, 3, 3),
        "bias": (6,),
        "conv_offset_mask.weight": (dg * 27, 8, 3, 3),
        "conv_offset_mask.bias": (dg * 27,),
    }
    stdv = 1 / math.sqrt(8 * 9)
    assert layer.weight.abs().max() <= stdv
    assert not layer.bias.any()
    assert not layer.conv_offset_mask.weight.any()
    assert not layer.conv_offset_mask.bias.any()
    # Fresh layer: zero offsets and mask sigmoid(0) = 0.5, i.e. half a plain convolution.
    x = torch.randn(1, 8, 5, 7)
    torch.testing.assert_close(layer(x), 0.5 * F.conv2d(x, layer.weight, padding=1))
    layer.load_state_dict(DCN(8, 6, deformable_groups=dg).state_dict(), strict=True)


def test_gradcheck():
    gen = torch.Generator().manual_seed(1)
    f64 = {"generator": gen, "dtype": torch.float64}
    x = torch.randn(1, 2, 4, 3, **f64)
    # Fractional parts kept away from 0: bilinear sampling has kinks at pixel positions.
    offset = torch.randint(-2, 3, (1, 36, 2, 2), **f64) + torch.rand(1, 36, 2, 2, **f64) * 0.6
    offset = offset + 0.2
    mask = torch.rand(1, 18, 2, 2, **f64)
    weight = torch.randn(2, 2, 3, 3, **f64)
    bias = torch.randn(2, **f64)
    inputs = tuple(t.requires_grad_() for t in (x, offset, mask, weight, bias))

    def fn(x, offset, mask, weight, bias):
        return modulated_deform_conv2d(x, offset, mask, weight, bias, 2, 1, 1, 2)

    assert torch.autograd.gradcheck(fn, inputs)


def test_rejects_offsets_of_wrong_size():
    x, offset, mask, weight, bias = _random_case(1, 4, 3, 7, 6, (1, 1), (1, 1), (1, 1), 1)
    with pytest.raises(ValueError, match="do not fit"):
        modulated_deform_conv2d(x, offset, mask, weight, bias, 2, 1, 1, 1)


def test_dilated_dcn_offsets_fit_output():
    """conv_offset_mask shares the layer's dilation, so a dilated DCN runs (the original's
    dilation-1 offset conv would give offsets of the wrong size)."""
    layer = DCN(4, 3, stride=2, padding=2, dilation=2)
    x = torch.randn(1, 4, 9, 8)
    want = F.conv2d(x, layer.weight, stride=2, padding=2, dilation=2)
    torch.testing.assert_close(layer(x), 0.5 * want)


def test_grads_flow_through_dcn():
    torch.manual_seed(0)
    layer = DCN(4, 3)
    torch.nn.init.normal_(layer.conv_offset_mask.weight, std=0.1)
    x = torch.randn(2, 4, 6, 5, requires_grad=True)
    layer(x).square().sum().backward()
    for name, grad in [("x", x.grad)] + [(n, p.grad) for n, p in layer.named_parameters()]:
        assert grad is not None and grad.abs().sum() > 0, name


def test_export_path_gives_same_grads():
    """The export-only autograd.Function computes the same values and gradients."""
    from centernet.models.dcn import _ModulatedDeformConv2dOnnx

    case = [t.requires_grad_() for t in _random_case(2, 4, 3, 7, 6, (2, 2), (1, 1), (1, 1), 2)]
    args = ((2, 2), (1, 1), (1, 1), 2)
    plain = modulated_deform_conv2d(*case, *args)
    wrapped = _ModulatedDeformConv2dOnnx.apply(*case, *args)
    torch.testing.assert_close(wrapped, plain)
    upstream = torch.randn_like(plain)
    grads_plain = torch.autograd.grad(plain, case, upstream)
    grads_wrapped = torch.autograd.grad(wrapped, case, upstream)
    for got, want in zip(grads_wrapped, grads_plain):
        torch.testing.assert_close(got, want)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dcn = DCN(8, 6, deformable_groups=2)
        self.down = DCN(6, 4, stride=2, padding=2, dilation=2)
        for layer in (self.dcn, self.down):
            # Offsets of a few pixels: about a third of the samples fall fully outside the
            # image and a fifth partly, so the zero-padding rule is exercised.
            torch.nn.init.normal_(layer.conv_offset_mask.weight, std=0.5)
            torch.nn.init.uniform_(layer.conv_offset_mask.bias, -2, 2)
            torch.nn.init.normal_(layer.weight)  # outputs of order 1, so atol means something
            torch.nn.init.normal_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.dcn(self.stem(x))))


def _export(module: torch.nn.Module, x: torch.Tensor, path: Path, opset: int = 19, **kw) -> None:
    """Legacy TorchScript export, as centernet.export.onnx_graph does; its deprecation notice
    silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=opset, **kw)


def test_onnx_export_is_deform_conv(tmp_path: Path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = _Net().eval()
    path = tmp_path / "dcn.onnx"
    with torch.no_grad():
        _export(
            net,
            torch.randn(1, 3, 10, 9),
            path,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={name: {0: "batch", 2: "height", 3: "width"} for name in ("x", "y")},
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {19}
    nodes = [node for node in model.graph.node if node.op_type == "DeformConv"]
    assert len(nodes) == 2
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in nodes]
    assert attrs[0]["offset_group"] == 2 and list(attrs[0]["pads"]) == [1, 1, 1, 1]
    assert list(attrs[1]["strides"]) == [2, 2] and list(attrs[1]["dilations"]) == [2, 2]
    assert len(nodes[0].input) == 5  # X, W, offset, B, mask

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, height, width in [(1, 10, 9), (2, 10, 9), (2, 13, 6)]:
        x = torch.randn(batch, 3, height, width)
        with torch.no_grad():
            want = net(x).numpy()
        (got,) = session.run(None, {"x": x.numpy()})
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_onnx_reference_evaluator_agrees(tmp_path: Path):
    """The ONNX spec's own reference implementation reads our DeformConv node the same way.

    Exported with autograd on (no ``torch.no_grad()``), which the exporter must also take.
    """
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    torch.manual_seed(1)
    layer = DCN(2, 2, deformable_groups=2).eval()
    torch.nn.init.normal_(layer.conv_offset_mask.weight, std=1.0)
    x = torch.randn(1, 2, 5, 4)
    _export(layer, x, tmp_path / "one.onnx")
    model = onnx.load(str(tmp_path / "one.onnx"))
    (got,) = ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, layer(x).numpy(), atol=1e-5, rtol=1e-5)


def test_onnx_export_needs_opset_19(tmp_path: Path):
    with pytest.raises(RuntimeError, match="opset >= 19"):
        _export(DCN(2, 2), torch.randn(1, 2, 5, 4), tmp_path / "old.onnx", opset=18)
