"""DLA-34 without deformable convolution ("dlav0"), with CenterNet's DLAUp neck and heads.

Module and attribute names follow the original CenterNet ``networks/dlav0.py`` one for one,
so that ``state_dict()`` keys and shapes equal those of ``DLASeg('dla34')`` and original
checkpoints load with ``strict=True``. That includes the unused ImageNet classifier
``base.fc``, which original checkpoints carry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from centernet.models.blocks import bilinear_upsampler, ctdet_heads, make_head, scale_channels

DLA34_LEVELS = (1, 1, 1, 2, 2, 1)
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual that the caller may supply (projected)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        residual = x if residual is None else residual
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Root(nn.Module):
    """Aggregation node: 1x1 convolution over the concatenated children."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, *children: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(torch.cat(children, 1))))


class Tree(nn.Module):
    """Hierarchical deep aggregation tree of ``levels`` levels."""

    def __init__(
        self,
        levels: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        level_root: bool = False,
        root_dim: int = 0,
    ) -> None:
        super().__init__()
        if root_dim == 0:
            root_dim = 2 * out_channels
        if level_root:
            root_dim += in_channels
        if levels == 1:
            self.tree1: nn.Module = BasicBlock(in_channels, out_channels, stride)
            self.tree2: nn.Module = BasicBlock(out_channels, out_channels, 1)
            self.root = Root(root_dim, out_channels)
        else:
            self.tree1 = Tree(levels - 1, in_channels, out_channels, stride, root_dim=0)
            self.tree2 = Tree(
                levels - 1, out_channels, out_channels, root_dim=root_dim + out_channels
            )
        self.level_root = level_root
        self.levels = levels
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else None
        self.project = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if in_channels != out_channels
            else None
        )

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None = None,
        children: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample is not None else x
        residual = self.project(bottom) if self.project is not None else bottom
        if self.level_root:
            children.append(bottom)
        x1 = self.tree1(x, residual)
        if self.levels == 1:
            x2 = self.tree2(x1)
            return self.root(x2, x1, *children)
        children.append(x1)
        return self.tree2(x1, children=children)


class DLA(nn.Module):
    """DLA backbone returning the six level outputs (strides 1..32)."""

    def __init__(
        self,
        levels: Sequence[int] = DLA34_LEVELS,
        channels: Sequence[int] = DLA34_CHANNELS,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.channels = list(channels)
        self.base_layer = nn.Sequential(
            nn.Conv2d(3, channels[0], 7, stride=1, padding=3, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        self.level0 = self._conv_level(channels[0], channels[0], levels[0])
        self.level1 = self._conv_level(channels[0], channels[1], levels[1], stride=2)
        self.level2 = Tree(levels[2], channels[1], channels[2], 2, level_root=False)
        self.level3 = Tree(levels[3], channels[2], channels[3], 2, level_root=True)
        self.level4 = Tree(levels[4], channels[3], channels[4], 2, level_root=True)
        self.level5 = Tree(levels[5], channels[4], channels[5], 2, level_root=True)
        # ImageNet classifier: unused by detection, kept so original checkpoints load strictly.
        self.fc = nn.Conv2d(channels[-1], num_classes, 1, stride=1, padding=0, bias=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))

    @staticmethod
    def _conv_level(inplanes: int, planes: int, convs: int, stride: int = 1) -> nn.Sequential:
        modules: list[nn.Module] = []
        for i in range(convs):
            modules += _conv_bn_relu(inplanes, planes, 3, stride if i == 0 else 1)
            inplanes = planes
        return nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.base_layer(x)
        levels = []
        for i in range(6):
            x = getattr(self, f"level{i}")(x)
            levels.append(x)
        return levels


class IDAUp(nn.Module):
    """Iterative deep aggregation: project, up-sample and fuse a list of levels."""

    def __init__(
        self, node_kernel: int, out_dim: int, channels: Sequence[int], up_factors: Sequence[int]
    ) -> None:
        super().__init__()
        self.channels = list(channels)
        for i, c in enumerate(channels):
            proj: nn.Module = (
                nn.Identity() if c == out_dim else nn.Sequential(*_conv_bn_relu(c, out_dim, 1))
            )
            f = int(up_factors[i])
            if f == 1:
                up: nn.Module = nn.Identity()
            else:
                up = bilinear_upsampler(out_dim, f)
            setattr(self, f"proj_{i}", proj)
            setattr(self, f"up_{i}", up)
        for i in range(1, len(channels)):
            setattr(
                self, f"node_{i}", nn.Sequential(*_conv_bn_relu(out_dim * 2, out_dim, node_kernel))
            )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))

    def forward(self, layers: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layers = [
            getattr(self, f"up_{i}")(getattr(self, f"proj_{i}")(layer))
            for i, layer in enumerate(layers)
        ]
        x = layers[0]
        fused = []
        for i in range(1, len(layers)):
            x = getattr(self, f"node_{i}")(torch.cat([x, layers[i]], 1))
            fused.append(x)
        return x, fused


class DLAUp(nn.Module):
    """Fuse the deepest levels upwards until the finest one (stride = down ratio)."""

    def __init__(self, channels: Sequence[int], scales: Sequence[int]) -> None:
        super().__init__()
        channels = list(channels)
        in_channels = list(channels)
        scales_arr = [int(s) for s in scales]
        for i in range(len(channels) - 1):
            j = -i - 2
            factors = [s // scales_arr[j] for s in scales_arr[j:]]
            setattr(self, f"ida_{i}", IDAUp(3, channels[j], in_channels[j:], factors))
            scales_arr[j + 1 :] = [scales_arr[j]] * len(scales_arr[j + 1 :])
            in_channels[j + 1 :] = [channels[j]] * len(in_channels[j + 1 :])

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        layers = list(layers)
        x = layers[-1]
        for i in range(len(layers) - 1):
            x, fused = getattr(self, f"ida_{i}")(layers[-i - 2 :])
            layers[-i - 1 :] = fused
        return x


class DLASeg(nn.Module):
    """CenterNet ctdet network: DLA backbone, DLAUp neck, one head per output.

    ``forward`` returns the raw head outputs as a dict (``hm`` before the sigmoid), like
    the original returns ``[ret]`` minus the list.
    """

    def __init__(
        self,
        heads: dict[str, int],
        head_conv: int = 256,
        down_ratio: int = 4,
        channels: Sequence[int] = DLA34_CHANNELS,
        levels: Sequence[int] = DLA34_LEVELS,
    ) -> None:
        super().__init__()
        assert down_ratio in (2, 4, 8, 16)
        self.heads = dict(heads)
        self.down_ratio = down_ratio
        self.first_level = int(math.log2(down_ratio))
        self.base = DLA(levels, channels)
        up_channels = self.base.channels[self.first_level :]
        self.dla_up = DLAUp(up_channels, scales=[2**i for i in range(len(up_channels))])
        feat = up_channels[0]
        for name, classes in self.heads.items():
            setattr(self, name, make_head(name, feat, head_conv, classes))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        levels = self.base(x)
        feat = self.dla_up(levels[self.first_level :])
        return {name: getattr(self, name)(feat) for name in self.heads}


def dlav0_34(num_classes: int, head_conv: int = 256, width: float = 1.0) -> DLASeg:
    """DLA-34 CenterNet; ``width`` < 1 scales every channel count (small default model)."""
    return DLASeg(
        ctdet_heads(num_classes),
        head_conv=scale_channels(head_conv, width, minimum=16),
        channels=[scale_channels(c, width) for c in DLA34_CHANNELS],
    )
