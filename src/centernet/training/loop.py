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
    from centernet.measure.evaluate import evaluate_detector
    from centernet.runtime.detector import Detector

    was_training = network.training
    engine = TorchEngine.from_network(network.eval(), spec, device)
    subset = dataclasses.replace(annotations, images=images)
    outcome = evaluate_detector(
        Detector(engine, threshold=0.0, batch_size=batch_size), subset, image_dir
    )
    network.train(was_training)
    return outcome.stats


@dataclass(frozen=True)
class CheckpointWriter:
    """Writes this run's checkpoints: the network and what rebuilds it are the same every
    time; only the path, epoch and (for model_last) the optimizer change."""

    network: torch.nn.Module
    arch: str
    arch_args: dict
    class_names: list[str]
    input_size: tuple[int, int]

    def write(self, path: Path, epoch: int, optimizer=None, extra: dict | None = None) -> None:
        save_checkpoint(
            path,
            self.network,
            epoch,
            self.arch,
            self.arch_args,
            self.class_names,
            optimizer,
            extra=extra,
            input_size=self.input_size,
        )


def train(config: TrainConfig, callback: Callable[[TrainEvent], None] | None = None) -> TrainResult:
    """Train ``config.arch`` on ``config.data``; checkpoints in the original format."""
    device = _device(config.device)
    torch.manual_seed(config.seed)
    annotations, train_images, val_ann, val_images, root = _split(config)
    class_names = annotations.category_names
    arch_args = {"width": config.width} if config.width != 1.0 else {}
    network = _network(config, len(class_names), arch_args, device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    start_epoch, best_ap = _resume(config, network, optimizer, device)
    dataset = CenterNetTrainSet(
        annotations,
        train_images,
        root / "images",
        config.augment,
        max_objects=config.max_objects,
        seed=config.seed,
    )
    loader = _loader(dataset, config)
    spec = ModelSpec(
        arch=config.arch,
        num_classes=len(class_names),
        class_names=class_names,
        input_size=(config.augment.input_size,) * 2,
        batch="dynamic",
        extra={"arch_args": arch_args} if arch_args else {},
    )
    checkpoints = CheckpointWriter(network, config.arch, arch_args, class_names, spec.input_size)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    last, best = out / "model_last.pth", out / "model_best.pth"
    history: list[dict] = []
    for epoch in range(start_epoch, config.epochs + 1):
        dataset.epoch = epoch
        started = time.perf_counter()
        means, lr = _train_epoch(
            network, loader, optimizer, scaler, epoch, config, device, use_amp, callback
        )
        metrics = None
        if epoch % config.val_every == 0 or epoch == config.epochs:
            images = Path(config.val_data or root) / "images"
            metrics = evaluate_network(network, spec, val_ann, val_images, images, device)
        record = {
            "epoch": epoch,
            "losses": means,
            "metrics": metrics,
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        if metrics is not None and metrics["AP"] > best_ap:
            best_ap = metrics["AP"]
            checkpoints.write(best, epoch)
        checkpoints.write(last, epoch, optimizer, extra={"best_ap": best_ap})
        if callback:
            steps = len(loader)
            callback(
                TrainEvent("epoch", epoch, steps, steps, means, lr, metrics, record["seconds"])
            )
    if not best.exists():
        checkpoints.write(best, config.epochs)
    (out / "train_config.json").write_text(_json(asdict(config)))
    return TrainResult(last=last, best=best, best_ap=best_ap, history=history)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _network(config: TrainConfig, num_classes: int, arch_args: dict, device) -> torch.nn.Module:
    """The network to train, on ``device``, from ``config.init``'s matching weights if given."""
    # channels_last: oneDNN and cuDNN convolutions run faster in NHWC (1.4x here on CPU)
    network = create_model(config.arch, num_classes, **arch_args)
    network = network.to(device, memory_format=torch.channels_last)
    if config.init:
        state, _ = read_state_dict(config.init)
        own = network.state_dict()
        compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        network.load_state_dict(compatible, strict=False)
    return network


def _resume(config: TrainConfig, network, optimizer, device) -> tuple[int, float]:
    """The first epoch to run and the best AP so far (from ``config.resume``, if given)."""
    if not config.resume:
        return 1, -1.0
    saved = torch.load(config.resume, map_location=device, weights_only=True)
    network.load_state_dict(saved["state_dict"])
    if "optimizer" in saved:
        optimizer.load_state_dict(saved["optimizer"])
    return int(saved["epoch"]) + 1, float(saved.get("best_ap", -1.0))


def _loader(dataset: CenterNetTrainSet, config: TrainConfig) -> DataLoader:
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
    return loader


def _train_epoch(
    network, loader, optimizer, scaler, epoch, config, device, use_amp, callback
) -> tuple[dict[str, float], float]:
    """One pass over ``loader``: the mean of each loss part, and the last learning rate."""
    network.train()
    total_steps = config.epochs * len(loader)
    running: dict[str, list[float]] = {}
    lr = config.lr
    for i, batch in enumerate(loader):
        lr = lr_at((epoch - 1) * len(loader) + i, total_steps, config)
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
    return {k: float(np.mean(v)) for k, v in running.items()}, lr


def _json(value) -> str:
    import json

    return json.dumps(value, indent=2, default=str)
