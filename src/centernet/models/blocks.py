"""Parts every CenterNet architecture shares: the output head and the up-sampling init.

Head parameter names (``<head>.0.*`` and ``<head>.2.*``) are those of the original networks
built with ``head_conv > 0``.
"""

from __future__ import annotations

import math

from torch import nn

HM_BIAS_INIT = -2.19  # sigmoid(-2.19) ~ 0.1: the focal-loss prior of the original


def ctdet_heads(num_classes: int) -> dict[str, int]:
    """The ctdet outputs: class heatmaps, box size, centre offset."""
    return {"hm": num_classes, "wh": 2, "reg": 2}


def scale_channels(channels: int, width: float, minimum: int = 8) -> int:
    """A channel count under the ``width`` multiplier of our small models (1.0: original)."""
    return channels if width == 1.0 else max(minimum, int(round(channels * width)))


def make_head(name: str, in_channels: int, head_conv: int, out_channels: int) -> nn.Sequential:
    """One head, initialised as the original: heatmap bias -2.19, regressions near zero."""
    head = nn.Sequential(
        nn.Conv2d(in_channels, head_conv, 3, padding=1, bias=True),
        nn.ReLU(inplace=True),
        nn.Conv2d(head_conv, out_channels, 1, stride=1, padding=0, bias=True),
    )
    if name == "hm":
        head[-1].bias.data.fill_(HM_BIAS_INIT)
    else:
        for m in head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.constant_(m.bias, 0)
    return head


def bilinear_up_weights(up: nn.ConvTranspose2d) -> None:
    """The original ``fill_up_weights``: a bilinear kernel in channel 0, copied to all."""
    w = up.weight.data
    f = math.ceil(w.size(2) / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    for i in range(w.size(2)):
        for j in range(w.size(3)):
            w[0, 0, i, j] = (1 - abs(i / f - c)) * (1 - abs(j / f - c))
    w[1:, 0] = w[0, 0]


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """The DLA necks' depthwise transposed convolution, ``factor`` times up, bilinear init."""
    up = nn.ConvTranspose2d(
        channels,
        channels,
        factor * 2,
        stride=factor,
        padding=factor // 2,
        output_padding=0,
        groups=channels,
        bias=False,
    )
    bilinear_up_weights(up)
    return up
