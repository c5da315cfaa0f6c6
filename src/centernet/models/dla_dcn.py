"""DLA-34 with deformable convolution in the up-sampling path (original ``dla_34``).

Module and attribute names follow the original ``networks/pose_dla_dcn.py`` one for one:
the same DLA-34 backbone as dlav0 (``base.*``, ImageNet ``base.fc`` included), then a
``dla_up`` whose aggregation nodes add (rather than concatenate) and whose projections and
nodes are DCNv2 3x3 convolutions followed by BatchNorm and ReLU, then a second ``ida_up``
that fuses strides 4, 8 and 16 before the heads. This is the network of the original
``ctdet_coco_dla_2x`` model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from centernet.models.blocks import bilinear_upsampler, ctdet_heads, make_head, scale_channels
from centernet.models.dcn import DCN
from centernet.models.dlav0 import DLA, DLA34_CHANNELS, DLA34_LEVELS


class DeformConvBlock(nn.Module):
    """DCNv2 3x3 then BatchNorm and ReLU (the original ``DeformConv``: ``conv``, ``actf``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.actf = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
        self.conv = DCN(in_channels, out_channels, kernel_size=(3, 3), stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.actf(self.conv(x))


class IDAUp(nn.Module):
    """Iterative aggregation: level i is projected, up-sampled, added to level i-1, fused."""

    def __init__(self, out_dim: int, channels: Sequence[int], up_factors: Sequence[int]) -> None:
        super().__init__()
        for i in range(1, len(channels)):
            setattr(self, f"proj_{i}", DeformConvBlock(channels[i], out_dim))
            setattr(self, f"up_{i}", bilinear_upsampler(out_dim, int(up_factors[i])))
            setattr(self, f"node_{i}", DeformConvBlock(out_dim, out_dim))

    def forward(self, layers: list[torch.Tensor], start: int, end: int) -> None:
        """Fuse ``layers[start:end]`` in place, as the original does."""
        for i in range(start + 1, end):
            k = i - start
            up = getattr(self, f"up_{k}")(getattr(self, f"proj_{k}")(layers[i]))
            layers[i] = getattr(self, f"node_{k}")(up + layers[i - 1])


class DLAUp(nn.Module):
    """Fuse the deepest levels upwards; returns the fused maps, finest first."""

    def __init__(self, start_level: int, channels: Sequence[int], scales: Sequence[int]) -> None:
        super().__init__()
        self.start_level = start_level
        channels = list(channels)
        in_channels = list(channels)
        scales_list = [int(s) for s in scales]
        for i in range(len(channels) - 1):
            j = -i - 2
            factors = [s // scales_list[j] for s in scales_list[j:]]
            setattr(self, f"ida_{i}", IDAUp(channels[j], in_channels[j:], factors))
            scales_list[j + 1 :] = [scales_list[j]] * len(scales_list[j + 1 :])
            in_channels[j + 1 :] = [channels[j]] * len(in_channels[j + 1 :])

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        levels = list(levels)
        out = [levels[-1]]
        for i in range(len(levels) - self.start_level - 1):
            getattr(self, f"ida_{i}")(levels, len(levels) - i - 2, len(levels))
            out.insert(0, levels[-1])
        return out


class DLASegDCN(nn.Module):
    """CenterNet ctdet network ``dla_34``; ``forward`` returns the raw head outputs."""

    def __init__(
        self,
        heads: dict[str, int],
        head_conv: int = 256,
        down_ratio: int = 4,
        last_level: int = 5,
        channels: Sequence[int] = DLA34_CHANNELS,
        levels: Sequence[int] = DLA34_LEVELS,
    ) -> None:
        super().__init__()
        self.heads = dict(heads)
        self.first_level = int(math.log2(down_ratio))
        self.last_level = last_level
        self.base = DLA(levels, channels)
        up_channels = list(channels[self.first_level :])
        scales = [2**i for i in range(len(up_channels))]
        self.dla_up = DLAUp(self.first_level, up_channels, scales)
        out_channel = channels[self.first_level]
        n_fused = last_level - self.first_level
        self.ida_up = IDAUp(
            out_channel,
            list(channels[self.first_level : last_level]),
            [2**i for i in range(n_fused)],
        )
        for name, classes in self.heads.items():
            setattr(self, name, make_head(name, out_channel, head_conv, classes))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        fused = self.dla_up(self.base(x))
        y = fused[: self.last_level - self.first_level]
        self.ida_up(y, 0, len(y))
        return {name: getattr(self, name)(y[-1]) for name in self.heads}


def dla_34(num_classes: int, head_conv: int = 256, width: float = 1.0) -> DLASegDCN:
    """DLA-34 CenterNet with DCNv2 (``dla_34``); ``width`` < 1 scales every channel."""
    return DLASegDCN(
        ctdet_heads(num_classes),
        head_conv=scale_channels(head_conv, width, minimum=16),
        channels=[scale_channels(c, width) for c in DLA34_CHANNELS],
    )
