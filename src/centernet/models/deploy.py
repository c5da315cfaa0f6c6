"""The network as it is deployed: the CenterNet network plus the sigmoid and the 3x3
heatmap max-pool (``DeployModel``, four maps), or plus the peak top-K (``TopKDeployModel``,
K boxes). The export traces these; the torch engine runs the same wrappers, so a
checkpoint and its export compute the same thing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DeployModel(nn.Module):
    """Network + sigmoid on ``hm`` + 3x3 max-pool of the heatmap, as a 4-tuple of maps."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.network(x)
        hm = torch.sigmoid(out["hm"])
        hm_max = F.max_pool2d(hm, kernel_size=3, stride=1, padding=1)
        return hm_max, hm, out["wh"], out["reg"]


class TopKDeployModel(nn.Module):
    """DeployModel followed by ctdet_decode's peak top-K, all in the graph.

    Outputs ``boxes`` (N, K, 4) xyxy in output-map cells, ``scores`` (N, K) and
    ``classes`` (N, K): the host only maps K boxes through the inverse affine instead of
    reading two C x H x W maps.
    """

    def __init__(self, network: nn.Module, k: int = 100) -> None:
        super().__init__()
        self.maps = DeployModel(network)
        self.k = k

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hm_max, hm, wh, reg = self.maps(x)
        width = hm.shape[3]
        cells = hm.shape[2] * width
        peaks = torch.where(hm == hm_max, hm, torch.zeros_like(hm))
        scores, index = torch.topk(peaks.flatten(1), self.k, dim=1)
        classes = torch.div(index, cells, rounding_mode="floor")
        position = index - classes * cells
        ys = torch.div(position, width, rounding_mode="floor")
        xs = position - ys * width
        at = position.unsqueeze(1).expand(-1, 2, -1)
        offset = torch.gather(reg.flatten(2), 2, at)
        size = torch.gather(wh.flatten(2), 2, at)
        cx = xs.to(hm.dtype) + offset[:, 0]
        cy = ys.to(hm.dtype) + offset[:, 1]
        boxes = torch.stack(
            [cx - size[:, 0] / 2, cy - size[:, 1] / 2, cx + size[:, 0] / 2, cy + size[:, 1] / 2],
            dim=2,
        )
        return boxes, scores, classes
