"""What several command modules share: exit codes, argument types, renamed options, the
engine and runtime options, the Detector of detect and eval. (Progress bars and lines:
``progress.py``.)"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR = 0, 1, 2

AddCommand = Callable[..., argparse.ArgumentParser]
"""``add_command(name, help=...)``: adds one subcommand's parser (see ``parser.py``)."""


def report_skipped(source: object, reason: str) -> None:
    """One line on stderr for an input that was skipped, and why (in command-line words)."""
    from centernet.errors import as_command_line

    print(f"centernet: skipped {source}: {as_command_line(reason)}", file=sys.stderr)


def input_size(text: str) -> tuple[int, int]:
    """'512' or 'HxW' -> (height, width), multiples of 32."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use 512 or 384x640)") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or any(p <= 0 or p % 32 for p in parts):
        raise argparse.ArgumentTypeError(f"size must be a positive multiple of 32: {text!r}")
    return parts[0], parts[1]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


# argparse names the type in "invalid _positive_int value: 'x'"; kept as it was before the
# cli/ split, so the message does not change
positive_int.__name__ = "_positive_int"


class DeprecatedAlias(argparse.Action):
    """An option's old spelling, hidden from --help: it still works, and says once on
    stderr which spelling replaces it (kept one release, then removed)."""

    def __init__(self, option_strings, dest, replacement: str, **kwargs) -> None:
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        command = parser.prog.removeprefix("centernet ").strip()
        print(
            f"centernet: {option_string} of `{command}` is deprecated: use {self.replacement} "
            "(the old spelling goes in the next release)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_renamed(parser: argparse.ArgumentParser, flag: str, old: str, **kwargs) -> argparse.Action:
    """Option ``flag`` (``add_argument``'s ``kwargs``), and its former name ``old`` as a
    hidden, deprecated alias that fills the same value."""
    action = parser.add_argument(flag, **kwargs)
    parser.add_argument(
        old,
        dest=action.dest,
        action=DeprecatedAlias,
        replacement=flag,
        type=kwargs.get("type"),
        metavar=kwargs.get("metavar"),
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    return action


def engine_config(args: argparse.Namespace):
    from centernet.engines import EngineConfig

    return EngineConfig(
        device=args.device,
        threads=args.threads,
        arch=getattr(args, "arch", None),
        classes_file=getattr(args, "classes", None),
        precision=args.precision,
        capture=getattr(args, "capture", None),
    )


def detector_config(args: argparse.Namespace, threshold: float, max_dets: int):
    """The DetectorConfig that detect and eval (locally or in Ray actors) run with."""
    from centernet.runtime.detector import DetectorConfig

    return DetectorConfig(
        engine=args.engine,
        threshold=threshold,
        max_dets=max_dets,
        batch_size=args.batch,
        keep_res=args.keep_res,
        options=engine_config(args),
        max_pixels=args.max_pixels,
        pipeline=getattr(args, "pipeline", "host"),
    )


def open_detector(args: argparse.Namespace, threshold: float, max_dets: int):
    """The Detector of a detect or eval run, its engine announced on stderr."""
    from centernet.runtime.detector import Detector

    detector = Detector(args.model, detector_config(args, threshold, max_dets))
    announce_engine(args.engine, detector.engine)
    return detector


def profile_table(profile) -> str:
    """Where the time went, per stage: a markdown table (threads overlap, so shares of the
    wall time add up to more than 100 %)."""
    lines = [
        f"profile: {profile.images} images in {profile.wall:.2f} s",
        "| stage | thread | ms per image | share of wall time |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {stage} | {thread} | {ms:.2f} | {share:.0%} |"
        for stage, thread, ms, share in profile.rows()
    ]
    return "\n".join(lines)


def announce_engine(asked: str, engine) -> None:
    """One line on stderr at the start of a run: which engine runs the model, and whether
    ``auto`` chose it (so a user sees what the default picked on this machine)."""
    chosen = " (auto)" if asked == "auto" else ""
    print(f"engine: {engine.name}{chosen}", file=sys.stderr, flush=True)


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """Which engine runs the model, where, with how many threads, in what arithmetic."""
    from centernet.engines import ENGINES, RUNTIME_PRECISIONS

    parser.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="auto: torch for .pth, openvino for .xml; for .onnx the fastest installed: "
        "openvino on x86-64 CPUs (not DCN models), else onnxruntime (and with --device cuda)",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where it runs")
    parser.add_argument("--threads", type=positive_int, default=None, help="engine threads")
    parser.add_argument(
        "--precision",
        default=None,
        choices=RUNTIME_PRECISIONS,
        help="run-time arithmetic; default: the model's own (fp32 float layers). "
        "bf16: openvino engine on CPUs with native bf16 (avx512_bf16, AMX), or torch; "
        "tf32 (CUDA), fp16: torch engine",
    )


def add_pipeline_arg(parser: argparse.ArgumentParser) -> None:
    """Where pre- and post-processing run: the host, or the torch engine's device."""
    parser.add_argument(
        "--pipeline",
        default="host",
        choices=("host", "device"),
        help="device: decode (nvJPEG on CUDA), warp, peaks and top-K in torch on --device, "
        "only K boxes per image back to the host (a .pth checkpoint, torch engine)",
    )


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    from centernet.runtime.images import DEFAULT_MAX_PIXELS

    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="skip images whose header declares more pixels (checked before decoding)",
    )


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    add_runtime_args(parser)
    add_pipeline_arg(parser)
    add_max_pixels(parser)
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        help="images per forward pass (a static-batch model fixes it)",
    )
    parser.add_argument(
        "--keep-res",
        action="store_true",
        help="original resolution padded to 32 (model needs --dynamic-size)",
    )
    parser.add_argument("--arch", default=None, help="architecture of a .pth checkpoint")
    parser.add_argument("--classes", default=None, help="class names of a .pth, one per line")


def batches(text: str) -> list[int]:
    from centernet.measure.bench import parse_batches

    try:
        return parse_batches(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
