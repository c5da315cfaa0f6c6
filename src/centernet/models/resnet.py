"""ResNet CenterNet networks: ``res_{18,34,50,101,152}`` and ``resdcn_{18,34,50,101}``.

Module and attribute names follow the original ``networks/msra_resnet.py`` (plain
transposed-convolution up-sampling, heads on 256 channels) and ``networks/resnet_dcn.py``
(each up-sampling stage is a DCNv2 3x3 followed by a bilinear-initialised transposed
convolution, heads on 64 channels) one for one, so original checkpoints load strictly.
``width`` < 1 scales every channel count: not an original option, it only serves small test
and demo models of the same topology.
"""

from __future__ import annotations

import torch
from torch import nn

from centernet.models.blocks import bilinear_up_weights, ctdet_heads, make_head, scale_channels
from centernet.models.dcn import DCN

# Original ``resnet_spec``: block type and blocks per stage.
RESNET_SPEC: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
RESDCN_DEPTHS = (18, 34, 50, 101)  # those the original resnet_dcn.py offers


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, as in the original), 1x1 expand by 4."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class PoseResNet(nn.Module):
    """ResNet backbone, three stride-2 up-sampling stages, one head per output.

    ``dcn`` selects the ``resnet_dcn.py`` variant. ``forward`` returns the raw head outputs
    as a dict (``hm`` before the sigmoid).
    """

    def __init__(
        self,
        depth: int,
        heads: dict[str, int],
        head_conv: int = 64,
        dcn: bool = False,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if depth not in RESNET_SPEC:
            raise ValueError(f"no ResNet-{depth}; known depths: {sorted(RESNET_SPEC)}")
        kind, blocks = RESNET_SPEC[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.heads = dict(heads)
        self.inplanes = scale_channels(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
            stride = 1 if stage == 1 else 2
            layer = self._make_layer(block, scale_channels(planes, width), count, stride)
            setattr(self, f"layer{stage}", layer)
        filters = (256, 128, 64) if dcn else (256, 256, 256)
        self.deconv_layers = self._make_deconv_layers(
            [scale_channels(f, width) for f in filters], dcn
        )
        head_conv = scale_channels(head_conv, width)
        for name in self.heads:
            setattr(self, name, make_head(name, self.inplanes, head_conv, self.heads[name]))

    def _make_layer(
        self, block: type[nn.Module], planes: int, count: int, stride: int
    ) -> nn.Sequential:
        expansion = block.expansion  # type: ignore[attr-defined]
        downsample = None
        if stride != 1 or self.inplanes != planes * expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * expansion
        layers += [block(self.inplanes, planes) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def _make_deconv_layers(self, filters: list[int], dcn: bool) -> nn.Sequential:
        layers: list[nn.Module] = []
        for planes in filters:
            if dcn:
                layers += [
                    DCN(self.inplanes, planes, kernel_size=(3, 3), stride=1, padding=1),
                    nn.BatchNorm2d(planes),
                    nn.ReLU(inplace=True),
                ]
                up = nn.ConvTranspose2d(planes, planes, 4, stride=2, padding=1, bias=False)
                bilinear_up_weights(up)
            else:
                up = nn.ConvTranspose2d(self.inplanes, planes, 4, stride=2, padding=1, bias=False)
                nn.init.normal_(up.weight, std=0.001)
            layers += [up, nn.BatchNorm2d(planes), nn.ReLU(inplace=True)]
            self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.deconv_layers(x)
        return {name: getattr(self, name)(x) for name in self.heads}


def res_net(depth: int):
    def build(num_classes: int, head_conv: int = 64, width: float = 1.0) -> PoseResNet:
        return PoseResNet(depth, ctdet_heads(num_classes), head_conv, dcn=False, width=width)

    build.__doc__ = f"CenterNet ResNet-{depth} (original ``res_{depth}``)."
    return build


def resdcn_net(depth: int):
    def build(num_classes: int, head_conv: int = 64, width: float = 1.0) -> PoseResNet:
        return PoseResNet(depth, ctdet_heads(num_classes), head_conv, dcn=True, width=width)

    build.__doc__ = f"CenterNet ResNet-{depth} with DCNv2 up-sampling (``resdcn_{depth}``)."
    return build
