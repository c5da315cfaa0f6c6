"""Hourglass-104 (original ``hourglass``, from CornerNet via ``networks/large_hourglass.py``).

Module and attribute names follow the original one for one (``pre``, ``kps``, ``cnvs``,
``inters``, ``inters_``, ``cnvs_`` and per-stack heads ``hm.<stack>.*``), so original
checkpoints load strictly. Two stacks; training supervises both, inference uses the last
stack's heads only, as the original detector does (``output = model(images)[-1]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from centernet.models.blocks import HM_BIAS_INIT, ctdet_heads, scale_channels

HOURGLASS_DIMS = (256, 256, 384, 384, 384, 512)
HOURGLASS_MODULES = (2, 2, 2, 2, 2, 4)


class Convolution(nn.Module):
    """k x k convolution, optional BatchNorm (none in the heads, which then have a bias), ReLU."""

    def __init__(self, k: int, in_dim: int, out_dim: int, stride: int = 1, with_bn: bool = True):
        super().__init__()
        pad = (k - 1) // 2
        self.conv = nn.Conv2d(in_dim, out_dim, k, padding=pad, stride=stride, bias=not with_bn)
        self.bn = nn.BatchNorm2d(out_dim) if with_bn else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Residual(nn.Module):
    """Two 3x3 convolutions plus a (projected when the shape changes) skip."""

    def __init__(self, in_dim: int, out_dim: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, out_dim, 3, padding=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(out_dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_dim)
        self.skip = (
            nn.Sequential(
                nn.Conv2d(in_dim, out_dim, 1, stride=stride, bias=False), nn.BatchNorm2d(out_dim)
            )
            if stride != 1 or in_dim != out_dim
            else nn.Sequential()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(out + self.skip(x))


def _residuals(in_dim: int, out_dim: int, count: int, stride: int = 1) -> nn.Sequential:
    """``make_layer`` / ``make_hg_layer``: the first changes the shape, the rest keep it."""
    layers = [Residual(in_dim, out_dim, stride)]
    layers += [Residual(out_dim, out_dim) for _ in range(count - 1)]
    return nn.Sequential(*layers)


def _residuals_reversed(in_dim: int, out_dim: int, count: int) -> nn.Sequential:
    """``make_layer_revr``: the last one changes the channel count."""
    layers = [Residual(in_dim, in_dim) for _ in range(count - 1)]
    layers.append(Residual(in_dim, out_dim))
    return nn.Sequential(*layers)


class HourglassModule(nn.Module):
    """One recursion level (``kp_module``): a skip branch plus down, recurse, up."""

    def __init__(self, n: int, dims: Sequence[int], modules: Sequence[int]) -> None:
        super().__init__()
        curr_mod, next_mod = modules[0], modules[1]
        curr_dim, next_dim = dims[0], dims[1]
        self.up1 = _residuals(curr_dim, curr_dim, curr_mod)
        self.max1 = nn.Sequential()  # the stride-2 first residual of low1 down-samples
        self.low1 = _residuals(curr_dim, next_dim, curr_mod, stride=2)
        self.low2: nn.Module = (
            HourglassModule(n - 1, dims[1:], modules[1:])
            if n > 1
            else _residuals(next_dim, next_dim, next_mod)
        )
        self.low3 = _residuals_reversed(next_dim, curr_dim, curr_mod)
        self.up2 = nn.Upsample(scale_factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(self.max1(x))))
        return up1 + self.up2(low)


def _head(cnv_dim: int, curr_dim: int, out_dim: int) -> nn.Sequential:
    """``make_kp_layer``: 3x3 convolution with bias and ReLU, then 1x1."""
    return nn.Sequential(
        Convolution(3, cnv_dim, curr_dim, with_bn=False), nn.Conv2d(curr_dim, out_dim, 1)
    )


class HourglassNet(nn.Module):
    """Stacked hourglass (``exkp``); ``forward`` returns the last stack's raw head outputs.

    :meth:`forward_stacks` gives every stack's outputs (intermediate supervision).
    """

    def __init__(
        self,
        heads: dict[str, int],
        stacks: int = 2,
        n: int = 5,
        dims: Sequence[int] = HOURGLASS_DIMS,
        modules: Sequence[int] = HOURGLASS_MODULES,
        cnv_dim: int = 256,
        pre_dim: int = 128,
    ) -> None:
        super().__init__()
        self.heads = dict(heads)
        self.stacks = stacks
        curr_dim = dims[0]
        self.pre = nn.Sequential(
            Convolution(7, 3, pre_dim, stride=2), Residual(pre_dim, curr_dim, stride=2)
        )
        self.kps = nn.ModuleList(HourglassModule(n, dims, modules) for _ in range(stacks))
        self.cnvs = nn.ModuleList(Convolution(3, curr_dim, cnv_dim) for _ in range(stacks))
        self.inters = nn.ModuleList(Residual(curr_dim, curr_dim) for _ in range(stacks - 1))
        self.inters_ = nn.ModuleList(
            nn.Sequential(nn.Conv2d(curr_dim, curr_dim, 1, bias=False), nn.BatchNorm2d(curr_dim))
            for _ in range(stacks - 1)
        )
        self.cnvs_ = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cnv_dim, curr_dim, 1, bias=False), nn.BatchNorm2d(curr_dim))
            for _ in range(stacks - 1)
        )
        for name, classes in self.heads.items():
            per_stack = nn.ModuleList(_head(cnv_dim, curr_dim, classes) for _ in range(stacks))
            if name == "hm":
                for head in per_stack:
                    head[-1].bias.data.fill_(HM_BIAS_INIT)
            setattr(self, name, per_stack)
        self.relu = nn.ReLU(inplace=True)

    def forward_stacks(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Every stack's head outputs, first to last (the original ``forward``)."""
        inter = self.pre(x)
        outs = []
        for i in range(self.stacks):
            cnv = self.cnvs[i](self.kps[i](inter))
            outs.append({name: getattr(self, name)[i](cnv) for name in self.heads})
            if i < self.stacks - 1:
                inter = self.relu(self.inters_[i](inter) + self.cnvs_[i](cnv))
                inter = self.inters[i](inter)
        return outs

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The last stack's outputs; the earlier stacks' heads are not computed."""
        inter = self.pre(x)
        for i in range(self.stacks):
            cnv = self.cnvs[i](self.kps[i](inter))
            if i < self.stacks - 1:
                inter = self.relu(self.inters_[i](inter) + self.cnvs_[i](cnv))
                inter = self.inters[i](inter)
        return {name: getattr(self, name)[-1](cnv) for name in self.heads}


def hourglass(num_classes: int, width: float = 1.0) -> HourglassNet:
    """Hourglass-104 CenterNet (``hourglass``); ``width`` < 1 scales every channel count."""
    return HourglassNet(
        ctdet_heads(num_classes),
        dims=[scale_channels(d, width) for d in HOURGLASS_DIMS],
        cnv_dim=scale_channels(256, width),
        pre_dim=scale_channels(128, width),
    )
