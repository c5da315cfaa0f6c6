"""Modulated deformable convolution (DCNv2) in plain PyTorch, exportable as ONNX ``DeformConv``.

The original CenterNet builds DLA-34 with the ``DCN`` module of CharlesShang/DCNv2, a
compiled CUDA extension. This module reproduces it with ordinary tensor operations, so it
trains and runs on any device, and exports to the standard ONNX ``DeformConv`` node
(opset 19) instead of a custom op.

Layout conventions (identical in DCNv2, ``torchvision.ops.deform_conv2d`` and ONNX):

* ``offset`` is ``(N, dg*2*kh*kw, Ho, Wo)``. For kernel point ``k = i*kw + j`` of offset
  group ``g``, channel ``g*2*kh*kw + 2*k`` is the row (y) offset and ``2*k + 1`` the
  column (x) offset.
* ``mask`` is ``(N, dg*kh*kw, Ho, Wo)``, channel ``g*kh*kw + k``; it multiplies the
  sampled value (the caller applies the sigmoid).
* Output ``(ho, wo)`` samples kernel point ``(i, j)`` at
  ``y = ho*stride_h - pad_h + i*dil_h + dy`` and ``x = wo*stride_w - pad_w + j*dil_w + dx``
  by bilinear interpolation in which each neighbour pixel outside the image counts as 0.
* The input channels split into ``dg`` contiguous groups; group ``g`` uses offset group
  ``g``. The weight has no channel groups.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IntPair = int | tuple[int, int]
DEFORM_CONV_OPSET = 19  # the first ONNX opset with DeformConv


def _pair(value: IntPair) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


def _deform_conv2d_torch(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    deformable_groups: int,
) -> torch.Tensor:
    """Sample every kernel point with ``grid_sample``, then contract with the weight.

    Bilinear ``grid_sample`` with zero padding treats each out-of-image neighbour as 0,
    which is exactly DCNv2's sampling rule, and it is differentiable in both the input and
    the sampling grid, so autograd gives the gradients for offsets and masks for free.
    """
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    k = kh * kw
    dg = deformable_groups
    ho = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if channels % dg:
        raise ValueError(f"{channels} input channels do not split into {dg} offset groups")
    if tuple(offset.shape) != (n, dg * 2 * k, ho, wo) or tuple(mask.shape) != (n, dg * k, ho, wo):
        raise ValueError(
            f"offset {tuple(offset.shape)} and mask {tuple(mask.shape)} do not fit a "
            f"{kh}x{kw} kernel with {dg} offset groups and output {ho}x{wo}: expected "
            f"{(n, dg * 2 * k, ho, wo)} and {(n, dg * k, ho, wo)}"
        )

    # Positions in at least float32: in float16 (AMP) a coordinate near 100 would be
    # rounded to 1/16 pixel.
    dtype = torch.promote_types(x.dtype, torch.float32)
    device = x.device
    rows = torch.arange(ho, dtype=dtype, device=device) * stride[0] - padding[0]
    cols = torch.arange(wo, dtype=dtype, device=device) * stride[1] - padding[1]
    kernel_rows = torch.arange(kh, dtype=dtype, device=device) * dilation[0]
    kernel_cols = torch.arange(kw, dtype=dtype, device=device) * dilation[1]
    # (K, Ho, 1) and (K, 1, Wo): undeformed positions of kernel point k = i*kw + j.
    base_y = (kernel_rows[:, None, None, None] + rows[:, None]).expand(kh, kw, ho, 1)
    base_x = (kernel_cols[None, :, None, None] + cols[None, :]).expand(kh, kw, 1, wo)
    base_y = base_y.reshape(k, ho, 1)
    base_x = base_x.reshape(k, 1, wo)

    offset = offset.to(dtype).reshape(n * dg, k, 2, ho, wo)
    y = base_y + offset[:, :, 0]  # (N*dg, K, Ho, Wo)
    x_pos = base_x + offset[:, :, 1]
    # With align_corners=False pixel p sits at (2p + 1)/size - 1. Same sampling as
    # align_corners=True at 2p/(size - 1) - 1, minus the division by zero for a 1-pixel axis.
    grid = torch.stack(((2 * x_pos + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    grid = grid.reshape(n * dg, k * ho, wo, 2)

    sampled = F.grid_sample(
        x.reshape(n * dg, channels // dg, height, width).to(dtype),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    ).to(x.dtype)  # (N*dg, C/dg, K*Ho, Wo): back to x's dtype, as it is K times x's size
    sampled = sampled * mask.reshape(n * dg, 1, k * ho, wo)
    columns = sampled.reshape(n, channels, k, ho, wo)  # channel g*C/dg + c: contiguous groups
    out = torch.einsum("nckhw,ock->nohw", columns, weight.reshape(out_channels, channels, k))
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


@contextlib.contextmanager
def _untraced() -> Iterator[None]:
    """Pause the TorchScript tracer (a no-op when not tracing)."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


class _ModulatedDeformConv2dOnnx(torch.autograd.Function):
    """Carries the computation through ONNX export as a single ``DeformConv`` node.

    Only used while exporting; training differentiates the plain ops directly. ``backward``
    recomputes through them anyway, so the Function is safe to use anywhere.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        offset: torch.Tensor,
        mask: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        deformable_groups: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, offset, mask, weight, bias)
        ctx.conf = (stride, padding, dilation, deformable_groups)
        args = (x, offset, mask, weight, bias, stride, padding, dilation, deformable_groups)
        if not torch.jit.is_tracing():
            return _deform_conv2d_torch(*args)
        # The legacy exporter records the ops traced here as a subgraph of the PythonOp
        # node, and its peephole pass crashes on that subgraph when it holds identity
        # arithmetic such as ``arange(n) * 1`` (stride 1) or ``+ 0`` (padding 0): "Argument
        # passed to at() was not in the map". So compute untraced, and hand the tracer a
        # clone, whose source enters the (discarded) subgraph as a constant. The tracer
        # needs a traced output; no_grad keeps that constant free of autograd history.
        with _untraced(), torch.no_grad():
            out = _deform_conv2d_torch(*args)
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs = [
            t.detach().requires_grad_(need)
            for t, need in zip(ctx.saved_tensors, ctx.needs_input_grad)
        ]
        wanted = [t for t in inputs if t.requires_grad]
        with torch.enable_grad():
            out = _deform_conv2d_torch(*inputs, *ctx.conf)
        grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True))
        return (*(next(grads) if t.requires_grad else None for t in inputs), None, None, None, None)

    @staticmethod
    def symbolic(
        g: Any,
        x: Any,
        offset: Any,
        mask: Any,
        weight: Any,
        bias: Any,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        deformable_groups: int,
    ) -> Any:
        opset = getattr(g, "opset", DEFORM_CONV_OPSET)
        if opset < DEFORM_CONV_OPSET:
            raise RuntimeError(
                f"DCN exports as ONNX DeformConv, which needs opset >= {DEFORM_CONV_OPSET}, "
                f"not {opset}"
            )
        kh, kw = weight.type().sizes()[2:]
        return g.op(
            "DeformConv",
            x,
            weight,
            offset,
            bias,
            mask,
            dilations_i=list(dilation),
            group_i=1,
            offset_group_i=deformable_groups,
            pads_i=[padding[0], padding[1], padding[0], padding[1]],
            strides_i=list(stride),
            kernel_shape_i=[kh, kw],
        )


def modulated_deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntPair = (1, 1),
    padding: IntPair = (1, 1),
    dilation: IntPair = (1, 1),
    deformable_groups: int = 1,
) -> torch.Tensor:
    """DCNv2 modulated deformable convolution (layout in the module docstring).

    Plain differentiable torch ops normally; in the TorchScript ONNX export
    (``dynamo=False``), one ``DeformConv`` node. The dynamo exporter, which ignores
    ``symbolic``, sees the plain ops.
    """
    args = (_pair(stride), _pair(padding), _pair(dilation), int(deformable_groups))
    if torch.onnx.is_in_onnx_export() and torch.jit.is_tracing():
        if bias is None:  # DeformConv's B is optional, but a zero bias keeps the symbolic simple
            bias = weight.new_zeros(weight.shape[0])
        return _ModulatedDeformConv2dOnnx.apply(x, offset, mask, weight, bias, *args)
    return _deform_conv2d_torch(x, offset, mask, weight, bias, *args)


class DCN(nn.Module):
    """CenterNet's ``DCN`` (DCNv2): offsets and masks predicted by a zero-initialised conv.

    Parameter names, shapes and initialisation match CharlesShang/DCNv2's ``DCN`` so that
    original checkpoints load with ``strict=True``. Zero init makes a fresh layer start as
    a plain convolution with mask 0.5. One deliberate difference: ``conv_offset_mask`` gets
    the layer's dilation too (the original leaves it at 1), without which the offsets of a
    dilated layer would not match its output size. With dilation 1, as in CenterNet, the
    two are identical.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = (3, 3),
        stride: IntPair = 1,
        padding: IntPair = 1,
        dilation: IntPair = 1,
        deformable_groups: int = 1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.deformable_groups = deformable_groups
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.conv_offset_mask = nn.Conv2d(
            in_channels,
            deformable_groups * 3 * kh * kw,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The original's init: uniform weight, zero bias, zero offset/mask predictor."""
        kh, kw = self.kernel_size
        stdv = 1.0 / math.sqrt(self.in_channels * kh * kw)
        with torch.no_grad():
            self.weight.uniform_(-stdv, stdv)
            self.bias.zero_()
            self.conv_offset_mask.weight.zero_()
            self.conv_offset_mask.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_offset_mask(x)
        # torch.chunk(out, 3, dim=1) as in the original, but with constant sizes, which the
        # legacy exporter turns into one Split node instead of a Shape/Slice chain.
        third = self.conv_offset_mask.out_channels // 3
        o1, o2, m = torch.split(out, [third, third, third], dim=1)
        offset = torch.cat((o1, o2), dim=1)
        mask = torch.sigmoid(m)
        return modulated_deform_conv2d(
            x,
            offset,
            mask,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.deformable_groups,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"deformable_groups={self.deformable_groups}"
        )
