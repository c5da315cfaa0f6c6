"""Data and training: ``synth`` (the synthetic shapes set) and ``train``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from centernet.cli.common import EXIT_OK, AddCommand, positive_int
from centernet.cli.progress import bar as progress_bar
from centernet.errors import CenterNetError

RESUME_LAST = object()  # `train --resume` alone: the run in --out


def register(add_command: AddCommand) -> None:
    """Adds ``synth`` and ``train``."""
    add_synth(add_command)
    add_train(add_command)


def add_synth(add_command: AddCommand) -> None:
    """The ``synth`` subcommand's arguments."""
    p = add_command("synth", help="write the deterministic synthetic shapes set")
    p.add_argument("--out", required=True, help="folder for images/ and instances.json")
    p.add_argument("-n", type=positive_int, default=1000, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="same seed, same images")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    from centernet.datasets.synthetic import CLASSES, SynthConfig, write_dataset

    started = time.perf_counter()
    with progress_bar(args.n, "synth", unit="img") as bar:
        path = write_dataset(
            args.out,
            args.n,
            seed=args.seed,
            config=SynthConfig(),
            progress=lambda done: bar.update(done - bar.n),
        )
    count = len(json.loads(path.read_text())["annotations"])
    print(
        f"wrote {args.n} images with {count} objects of {len(CLASSES)} classes "
        f"({', '.join(CLASSES)}) to {args.out} in {time.perf_counter() - started:.1f} s; "
        f"annotations {path}"
    )
    return EXIT_OK


def add_train(add_command: AddCommand) -> None:
    """The ``train`` subcommand's arguments."""
    p = add_command("train", help="train a CenterNet model on a COCO-format folder")
    p.add_argument("--data", required=True, help="folder with instances.json and images/")
    p.add_argument("--out", required=True, help="folder for checkpoints")
    p.add_argument("--arch", default="dlav0_34", help="architecture to train")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (<1: smaller)")
    p.add_argument("--epochs", type=positive_int, default=10, help="passes over the data")
    p.add_argument("--batch", type=positive_int, default=16, help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    p.add_argument("--input-size", type=int, default=512, help="square inference input size")
    p.add_argument("--crop", type=int, default=None, help="train on crops of this size")
    p.add_argument("--val-data", default=None, help="validation folder (default: split off 10%%)")
    p.add_argument("--val-every", type=positive_int, default=1, help="epochs between AP checks")
    p.add_argument("--val-limit", type=positive_int, default=300, help="validation images")
    p.add_argument("--workers", type=int, default=2, help="data loading processes")
    p.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: cuda if present"
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same run")
    p.add_argument(
        "--resume",
        nargs="?",
        const=RESUME_LAST,
        default=None,
        metavar="CHECKPOINT",
        help="go on with a stopped run: alone, from OUT/model_last.pth (same --out); or "
        "from the model_last.pth given",
    )
    p.add_argument("--init", default=None, help="initial weights (shapes that match)")
    p.set_defaults(func=cmd_train)


def _resume_from(args: argparse.Namespace) -> str | None:
    """The checkpoint ``--resume`` names: alone, the last one of the run in ``--out``."""
    if args.resume is RESUME_LAST:
        last = Path(args.out) / "model_last.pth"
        if not last.is_file():
            raise CenterNetError(f"--resume: no {last} to go on from")
        return str(last)
    return args.resume


def cmd_train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        from centernet.errors import MissingDependencyError

        raise MissingDependencyError("torch", "torch") from None
    from centernet.training.augment import AugmentConfig
    from centernet.training.loop import TrainConfig, train

    config = TrainConfig(
        data=args.data,
        out=args.out,
        arch=args.arch,
        width=args.width,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        augment=AugmentConfig(input_size=args.input_size, crop=args.crop),
        val_data=args.val_data,
        val_every=args.val_every,
        val_limit=args.val_limit,
        workers=args.workers,
        device=args.device,
        seed=args.seed,
        resume=_resume_from(args),
        init=args.init,
    )
    bar = None

    def report(event) -> None:
        nonlocal bar
        if event.kind == "step":
            if bar is None:
                bar = progress_bar(
                    event.steps_per_epoch, f"epoch {event.epoch}", unit="step", leave=False
                )
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in event.losses.items()}, refresh=False)
            return
        if bar is not None:
            bar.close()
            bar = None
        losses = " ".join(f"{k} {v:.3f}" for k, v in event.losses.items())
        ap = (
            f"; val AP {event.metrics['AP']:.3f} AP50 {event.metrics['AP50']:.3f}"
            if event.metrics
            else ""
        )
        print(
            f"epoch {event.epoch}: {losses}; lr {event.lr:.2e}; {event.seconds:.0f} s{ap}",
            flush=True,
        )

    result = train(config, report)
    print(f"best val AP {result.best_ap:.3f}: {result.best}; last: {result.last}")
    return EXIT_OK
