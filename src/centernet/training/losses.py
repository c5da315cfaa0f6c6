"""CenterNet losses: penalty-reduced focal loss on the heatmap, L1 on size and offset."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    hm: float = 1.0
    wh: float = 0.1
    off: float = 1.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The original ``_neg_loss`` (alpha 2, beta 4) on clamped sigmoid, per positive."""
    pred = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg_weights = torch.pow(1 - target, 4) * (1 - pos)
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, 2) * pos).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, 2) * neg_weights).sum()
    num_pos = pos.sum()
    return -(pos_loss + neg_loss) / num_pos.clamp(min=1)


def gather_at(maps: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) maps at flat indices (B, K) -> (B, K, C)."""
    batch, channels = maps.shape[:2]
    flat = maps.reshape(batch, channels, -1)
    return flat.gather(2, ind[:, None, :].expand(-1, channels, -1)).permute(0, 2, 1)


def masked_l1(pred_maps: torch.Tensor, ind, mask, target) -> torch.Tensor:
    """The original ``RegL1Loss``: L1 at the object centres, averaged over real entries."""
    pred = gather_at(pred_maps.float(), ind)
    m = mask[..., None].expand_as(pred)
    return F.l1_loss(pred * m, target * m, reduction="sum") / (m.sum() + 1e-4)


def centernet_loss(
    outputs: dict[str, torch.Tensor] | list[dict[str, torch.Tensor]],
    batch: dict[str, torch.Tensor],
    weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Focal + weighted L1 losses; a list of outputs (one per Hourglass stack) is averaged
    over the stacks, as the original's intermediate supervision does."""
    stacks = outputs if isinstance(outputs, list) else [outputs]
    hm = sum(focal_loss(o["hm"], batch["hm"]) for o in stacks) / len(stacks)
    wh = sum(masked_l1(o["wh"], batch["ind"], batch["mask"], batch["wh"]) for o in stacks)
    off = sum(masked_l1(o["reg"], batch["ind"], batch["mask"], batch["reg"]) for o in stacks)
    wh, off = wh / len(stacks), off / len(stacks)
    total = weights.hm * hm + weights.wh * wh + weights.off * off
    parts = {"loss": total.item(), "hm": hm.item(), "wh": wh.item(), "off": off.item()}
    return total, parts
