"""The CenterNet losses against slow, obvious loops over every cell and every object."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from centernet.training.losses import (  # noqa: E402
    LossWeights,
    centernet_loss,
    focal_loss,
    masked_l1,
)


def reference_focal(logits, target) -> float:
    """The original _neg_loss, one cell at a time."""
    pos_sum = neg_sum = 0.0
    positives = 0
    for logit, t in zip(logits.flatten().tolist(), target.flatten().tolist()):
        p = min(max(1 / (1 + math.exp(-logit)), 1e-4), 1 - 1e-4)
        if t == 1:
            positives += 1
            pos_sum += math.log(p) * (1 - p) ** 2
        else:
            neg_sum += math.log(1 - p) * p**2 * (1 - t) ** 4
    return -(pos_sum + neg_sum) / max(positives, 1)


def test_focal_loss_equals_the_per_cell_formula():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((2, 3, 5, 6), generator=generator) * 3
    target = torch.rand((2, 3, 5, 6), generator=generator) * 0.9
    target[0, 1, 2, 3] = target[1, 0, 4, 5] = 1.0  # two object centres
    assert focal_loss(logits, target).item() == pytest.approx(
        reference_focal(logits, target), rel=1e-5
    )
    empty = torch.zeros_like(target)  # no object: the sum over negatives, not divided by 0
    assert focal_loss(logits, empty).item() == pytest.approx(reference_focal(logits, empty), 1e-5)


def test_masked_l1_reads_the_centres_and_ignores_padding():
    maps = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 2, 3, 4)
    ind = torch.tensor([[5, 0, 0], [11, 2, 0]])  # flat cell indices per object slot
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])  # real objects: 1, 2
    target = torch.zeros((2, 3, 2))
    total, entries = 0.0, 0
    for b in range(2):
        for k in range(3):
            if mask[b, k]:
                y, x = divmod(int(ind[b, k]), 4)
                for c in range(2):
                    total += abs(maps[b, c, y, x].item() - target[b, k, c].item())
                    entries += 1
    got = masked_l1(maps, ind, mask, target).item()
    assert got == pytest.approx(total / (entries + 1e-4), rel=1e-6)


def test_the_total_is_the_weighted_sum_and_stacks_are_averaged():
    generator = torch.Generator().manual_seed(1)
    shape = (1, 2, 4, 4)
    batch = {
        "hm": torch.rand(shape, generator=generator) * 0.5,
        "ind": torch.tensor([[3, 9]]),
        "mask": torch.tensor([[1.0, 1.0]]),
        "wh": torch.rand((1, 2, 2), generator=generator) * 5,
        "reg": torch.rand((1, 2, 2), generator=generator),
    }
    batch["hm"][0, 0, 0, 3] = 1.0

    def outputs(seed):
        g = torch.Generator().manual_seed(seed)
        return {k: torch.randn((1, 2, 4, 4), generator=g) for k in ("hm", "wh", "reg")}

    weights = LossWeights(hm=1.0, wh=0.1, off=1.0)
    one = outputs(2)
    total, parts = centernet_loss(one, batch, weights)
    assert total.item() == pytest.approx(parts["hm"] + 0.1 * parts["wh"] + parts["off"], 1e-6)
    two = [one, outputs(3)]
    stacked, _ = centernet_loss(two, batch, weights)
    alone = [centernet_loss(o, batch, weights)[0].item() for o in two]
    assert stacked.item() == pytest.approx(sum(alone) / 2, rel=1e-6)
