"""Training on the synthetic set: the loss falls, a minute of training finds a large shape,
checkpoints keep the original format and resume."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from centernet.datasets.coco import load_annotations  # noqa: E402
from centernet.datasets.synthetic import SynthConfig, render_sample, write_dataset  # noqa: E402
from centernet.models import create_model  # noqa: E402
from centernet.models.checkpoint import load_checkpoint  # noqa: E402
from centernet.training.augment import AugmentConfig  # noqa: E402
from centernet.training.data import CenterNetTrainSet  # noqa: E402
from centernet.training.loop import TrainConfig, forward_for_training, train  # noqa: E402
from centernet.training.losses import LossWeights, centernet_loss  # noqa: E402

# One whole circle, 90-150 px, on a plain gradient: what a minute of CPU can learn.
ONE_BIG_SHAPE = SynthConfig(
    min_side=256,
    max_side=256,
    min_objects=1,
    max_objects=1,
    min_object=90,
    max_object_fraction=0.6,
    keep_inside=True,
    clutter=False,
    noise=False,
    shapes=(0,),
)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def training_batch(folder, size: int) -> dict:
    """``size`` synthetic images with their targets at 128x128, unaugmented."""
    write_dataset(folder, size, seed=3)
    annotations = load_annotations(folder / "instances.json")
    dataset = CenterNetTrainSet(
        annotations,
        annotations.images,
        folder / "images",
        AugmentConfig(input_size=128, flip=0, colour=False),
    )
    return torch.utils.data.default_collate([dataset[i] for i in range(size)])


def test_a_few_steps_lower_the_loss(tmp_path):
    batch = training_batch(tmp_path, 8)
    torch.manual_seed(0)
    model = create_model("dlav0_34", 5, width=0.25)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        loss, parts = centernet_loss(model(batch["input"]), batch, LossWeights())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(parts["loss"])
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_hourglass_trains_both_stacks(tmp_path):
    batch = training_batch(tmp_path, 2)
    model = create_model("hourglass", 5, width=0.125)
    stacks = forward_for_training(model, batch["input"])
    assert isinstance(stacks, list) and len(stacks) == 2
    loss, parts = centernet_loss(stacks, batch, LossWeights())
    first, last = (
        centernet_loss(stacks[0], batch, LossWeights()),
        centernet_loss(stacks[1], batch, LossWeights()),
    )
    assert parts["hm"] == pytest.approx((first[1]["hm"] + last[1]["hm"]) / 2, rel=1e-5)
    loss.backward()
    assert model.hm[0][1].weight.grad.abs().sum() > 0  # the first stack's head is supervised
    assert model.hm[1][1].weight.grad.abs().sum() > 0


def test_a_minute_of_training_finds_a_large_shape(tmp_path):
    write_dataset(tmp_path / "data", 72, seed=11, config=ONE_BIG_SHAPE)
    config = TrainConfig(
        data=str(tmp_path / "data"),
        out=str(tmp_path / "run"),
        width=0.25,
        epochs=36,
        batch=16,
        lr=3e-3,
        warmup_steps=10,
        val_fraction=0.1,
        val_every=1000,
        workers=0,
        augment=AugmentConfig(input_size=128, scale_range=(1.0, 1.0), colour=False),
    )
    result = train(config)
    assert [h["epoch"] for h in result.history] == list(range(1, 37))
    losses = [h["losses"]["loss"] for h in result.history]
    assert losses[-1] < 0.3 * losses[0]
    from centernet.runtime.detector import Detector

    detector = Detector(result.last)  # runs at the 128x128 it was trained for
    hits = 0
    for index in range(100, 106):  # images the model never saw
        sample = render_sample(11, index, ONE_BIG_SHAPE)
        x1, y1, x2, y2 = sample.objects[0].box
        best = detector(sample.image)
        hits += best.class_ids[0] == 0 and iou(best.xyxy[0], (x1, y1, x2 + 1, y2 + 1)) > 0.5
    assert hits >= 4


def test_checkpoints_keep_the_original_format_and_resume(tmp_path):
    write_dataset(tmp_path / "data", 10, seed=2)
    base = dict(
        data=str(tmp_path / "data"),
        out=str(tmp_path / "run"),
        width=0.25,
        batch=4,
        augment=AugmentConfig(input_size=64),
        val_fraction=0.2,
        workers=0,
        val_limit=2,
    )
    train(TrainConfig(epochs=1, **base))
    saved = torch.load(tmp_path / "run" / "model_last.pth", weights_only=True)
    assert saved["epoch"] == 1 and set(saved["state_dict"]) == set(
        create_model("dlav0_34", 5, width=0.25).state_dict()
    )
    assert "optimizer" in saved
    loaded = load_checkpoint(tmp_path / "run" / "model_best.pth")
    assert loaded.num_classes == 5 and loaded.arch_args == {"width": 0.25}
    assert loaded.class_names == ["circle", "square", "triangle", "cross", "star"]
    assert loaded.input_size == (64, 64)  # what export and the torch engine default to
    resumed = train(TrainConfig(epochs=2, resume=str(tmp_path / "run" / "model_last.pth"), **base))
    assert [h["epoch"] for h in resumed.history] == [2]
    assert torch.load(tmp_path / "run" / "model_last.pth", weights_only=True)["epoch"] == 2
