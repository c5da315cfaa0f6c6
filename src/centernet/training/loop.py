"""The training loop: AdamW, warm-up + cosine schedule, AMP on CUDA, checkpoints, periodic AP."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from centernet.datasets.coco import CocoAnnotations, CocoImage, load_annotations
from centernet.errors import CenterNetError
from centernet.models import create_model
from centernet.models.checkpoint import read_state_dict, save_checkpoint
from centernet.training.augment import AugmentConfig
from centernet.training.data import CenterNetTrainSet
from centernet.training.losses import LossWeights, centernet_loss
from centernet.types import ModelSpec


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; written next to the checkpoints."""

    data: str  # folder with instances.json and images/
    out: str
    arch: str = "dlav0_34"
    width: float = 1.0
    epochs: int = 10
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # holds the input size
    val_data: str | None = None  # else the last val_fraction of images (by id)
    val_fraction: float = 0.1
    val_every: int = 1  # epochs
    val_limit: int | None = 300
    workers: int = 2
    device: str = "auto"
    amp: bool = True  # CUDA only
    seed: int = 0
    resume: str | None = None  # a model_last.pth of an earlier run
    init: str | None = None  # start from these weights (e.g. an original checkpoint)
    max_objects: int = 128
    loss_weights: LossWeights = field(default_factory=LossWeights)


@dataclass
class TrainEvent:
    """What the loop reports: each step, and each end of epoch (with val metrics)."""

    kind: str  # "step" | "epoch"
    epoch: int
    step: int
    steps_per_epoch: int
    losses: dict[str, float]
    lr: float
    metrics: dict[str, float] | None = None
    seconds: float = 0.0


@dataclass
class TrainResult:
    last: Path
    best: Path
    best_ap: float
    history: list[dict] = field(default_factory=list)


def _split(
    config: TrainConfig,
) -> tuple[CocoAnnotations, list[CocoImage], CocoAnnotations, list[CocoImage], Path]:
    root = Path(config.data)
    annotations = load_annotations(root / "instances.json")
    images = annotations.images
    if config.val_data:
        val_ann = load_annotations(Path(config.val_data) / "instances.json")
        val_images = val_ann.images
    else:
        n_val = max(1, int(len(images) * config.val_fraction))
        if n_val >= len(images):
            raise CenterNetError(f"{root}: too few images ({len(images)}) to split off validation")
        images, val_images, val_ann = images[:-n_val], images[-n_val:], annotations
    if config.val_limit:
        val_images = val_images[: config.val_limit]
    return annotations, images, val_ann, val_images, root


def lr_at(step: int, total: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def forward_for_training(network: torch.nn.Module, x: torch.Tensor):
    """Every stack's outputs for stacked networks (Hourglass), else the one output dict."""
    stacks = getattr(network, "forward_stacks", None)
    return stacks(x) if stacks is not None else network(x)


def evaluate_network(
    network: torch.nn.Module,
    spec: ModelSpec,
    annotations: CocoAnnotations,
    images: list[CocoImage],
    image_dir: Path,
    device: torch.device,
    batch_size: int = 8,
) -> dict[str, float]:
    """COCO AP of an in-memory network through the real inference path (threshold 0)."""
    from centernet.engines.torch import TorchEngine
    from centernet.evaluate import evaluate_detector
    from centernet.pipeline import Detector

    was_training = network.training
    engine = TorchEngine.from_network(network.eval(), spec, device)
    subset = dataclasses.replace(annotations, images=images)
    outcome = evaluate_detector(
        Detector(engine, threshold=0.0, batch_size=batch_size), subset, image_dir
    )
    network.train(was_training)
    return outcome.stats


def train(config: TrainConfig, callback: Callable[[TrainEvent], None] | None = None) -> TrainResult:
    """Train ``config.arch`` on ``config.data``; checkpoints in the original format."""
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu")
        if config.device == "auto"
        else config.device
    )
    torch.manual_seed(config.seed)
    annotations, train_images, val_ann, val_images, root = _split(config)
    class_names = annotations.category_names
    arch_args = {"width": config.width} if config.width != 1.0 else {}
    # channels_last: oneDNN and cuDNN convolutions run faster in NHWC (1.4x here on CPU)
    network = create_model(config.arch, len(class_names), **arch_args)
    network = network.to(device, memory_format=torch.channels_last)
    if config.init:
        state, _ = read_state_dict(config.init)
        own = network.state_dict()
        compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        network.load_state_dict(compatible, strict=False)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    start_epoch, best_ap, history = 1, -1.0, []
    if config.resume:
        saved = torch.load(config.resume, map_location=device, weights_only=True)
        network.load_state_dict(saved["state_dict"])
        if "optimizer" in saved:
            optimizer.load_state_dict(saved["optimizer"])
        start_epoch = int(saved["epoch"]) + 1
        best_ap = float(saved.get("best_ap", -1.0))
    dataset = CenterNetTrainSet(
        annotations,
        train_images,
        root / "images",
        config.augment,
        max_objects=config.max_objects,
        seed=config.seed,
    )
    loader = DataLoader(
        dataset,
        batch_size=config.batch,
        shuffle=True,
        drop_last=True,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        generator=torch.Generator().manual_seed(config.seed),
    )
    if len(loader) == 0:
        raise CenterNetError(
            f"fewer training images ({len(dataset)}) than one batch ({config.batch})"
        )
    spec = ModelSpec(
        arch=config.arch,
        num_classes=len(class_names),
        class_names=class_names,
        input_size=(config.augment.input_size,) * 2,
        batch="dynamic",
        extra={"arch_args": arch_args} if arch_args else {},
    )
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    total_steps = config.epochs * len(loader)
    last, best = out / "model_last.pth", out / "model_best.pth"
    for epoch in range(start_epoch, config.epochs + 1):
        dataset.epoch = epoch
        network.train()
        started = time.perf_counter()
        running: dict[str, list[float]] = {}
        for i, batch in enumerate(loader):
            step = (epoch - 1) * len(loader) + i
            lr = lr_at(step, total_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            batch["input"] = batch["input"].contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                outputs = forward_for_training(network, batch["input"])
            loss, parts = centernet_loss(outputs, batch, config.loss_weights)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            for k, v in parts.items():
                running.setdefault(k, []).append(v)
            if callback:
                callback(TrainEvent("step", epoch, i + 1, len(loader), parts, lr))
        means = {k: float(np.mean(v)) for k, v in running.items()}
        metrics = None
        if epoch % config.val_every == 0 or epoch == config.epochs:
            metrics = evaluate_network(
                network, spec, val_ann, val_images, Path(config.val_data or root) / "images", device
            )
        record = {
            "epoch": epoch,
            "losses": means,
            "metrics": metrics,
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        if metrics is not None and metrics["AP"] > best_ap:
            best_ap = metrics["AP"]
            save_checkpoint(
                best,
                network,
                epoch,
                config.arch,
                arch_args,
                class_names,
                input_size=spec.input_size,
            )
        save_checkpoint(
            last,
            network,
            epoch,
            config.arch,
            arch_args,
            class_names,
            optimizer,
            extra={"best_ap": best_ap},
            input_size=spec.input_size,
        )
        if callback:
            callback(
                TrainEvent(
                    "epoch", epoch, len(loader), len(loader), means, lr, metrics, record["seconds"]
                )
            )
    if not best.exists():
        save_checkpoint(
            best,
            network,
            config.epochs,
            config.arch,
            arch_args,
            class_names,
            input_size=spec.input_size,
        )
    (out / "train_config.json").write_text(_json(asdict(config)))
    return TrainResult(last=last, best=best, best_ap=best_ap, history=history)


def _json(value) -> str:
    import json

    return json.dumps(value, indent=2, default=str)
