"""Making models: ``export`` (checkpoint -> ONNX) and ``build`` (fp32/fp16/int8 builds)."""

from __future__ import annotations

import argparse
import sys

from centernet.cli.common import EXIT_OK, AddCommand, input_size, positive_int
from centernet.cli.progress import StageBars
from centernet.errors import CenterNetError


def register(add_command: AddCommand) -> None:
    """Adds ``export`` and ``build``."""
    add_export(add_command)
    add_build(add_command)


def add_export(add_command: AddCommand) -> None:
    """The ``export`` subcommand's arguments."""
    p = add_command("export", help="checkpoint -> ONNX with sigmoid + heatmap max-pool")
    p.add_argument("checkpoint", nargs="?", help="original CenterNet .pth (or our own)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument(
        "--arch",
        default=None,
        help="architecture (default: stored in or inferred from the checkpoint)",
    )
    p.add_argument(
        "--input-size",
        type=input_size,
        default=None,
        help="512 or HxW (default: the size stored in the checkpoint, else 512)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--batch", type=positive_int, default=1, help="static batch size")
    group.add_argument("--dynamic-batch", action="store_true", help="free batch dimension")
    p.add_argument("--dynamic-size", action="store_true", help="free H and W (for --keep-res)")
    p.add_argument(
        "--topk-in-graph",
        action="store_true",
        help="end the graph in top-K boxes/scores/classes instead of the maps",
    )
    p.add_argument("--classes", default=None, help="class names, one per line")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (DCN models use 19)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime check")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="no checkpoint: export untrained weights (to try the tool)",
    )
    p.add_argument("--num-classes", type=positive_int, default=80, help="with --random-init")
    p.add_argument("--seed", type=int, default=0, help="with --random-init")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from centernet.export.from_checkpoint import RandomInitConfig, export_checkpoint
    from centernet.export.onnx_graph import ExportConfig

    if args.checkpoint is None and not args.random_init:
        raise CenterNetError("give a checkpoint, or --random-init for untrained weights")
    config = ExportConfig(
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        dynamic_size=args.dynamic_size,
        opset=args.opset,
        output_mode="topk" if args.topk_in_graph else "maps",
        verify=not args.no_verify,
    )
    random_init = RandomInitConfig(args.num_classes, args.seed) if args.random_init else None
    result = export_checkpoint(
        args.checkpoint, args.output, config, args.arch, args.input_size, args.classes,
        random_init if args.checkpoint is None else None,
    )  # fmt: skip
    spec = result.spec
    size_mb = result.path.stat().st_size / 1e6
    batch = "N" if config.dynamic_batch else str(config.batch)
    hw = "HxW" if config.dynamic_size else f"{spec.input_size[0]}x{spec.input_size[1]}"
    key = "scores" if config.output_mode == "topk" else "hm"
    check = f", {result.check.summary(key)}" if result.check else ", not verified"
    print(
        f"wrote {result.path}: {spec.arch}, {spec.num_classes} classes, input {batch}x3x{hw}, "
        f"opset {result.opset}, {size_mb:.1f} MB{check}, {result.seconds:.1f} s"
    )
    if result.arch_inferred:
        print(
            f"note: architecture {spec.arch} inferred from the checkpoint's keys (--arch to "
            "choose)"
        )
    if "weights" in spec.extra:
        print("note: random weights - this model is for trying the tool, not for detecting")
    return EXIT_OK


def add_build(add_command: AddCommand) -> None:
    """The ``build`` subcommand's arguments: generated from ``BuildConfig`` and the settings
    it nests (``quantize/config.py``), where each default, choice and help text lives."""
    from centernet.cli.config_args import add_config_arguments
    from centernet.quantize.config import BuildConfig

    p = add_command("build", help="fp32 / fp16 / int8 / int8-mixed build of an export")
    p.add_argument("model", help="the fp32 .onnx from `centernet export`")
    p.add_argument(
        "-o", "--output", required=True, help="the .onnx or OpenVINO .xml to write (not the input)"
    )
    add_config_arguments(p, BuildConfig)
    p.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from centernet.cli.config_args import config_from_arguments
    from centernet.quantize.config import BuildConfig
    from centernet.quantize.recipe import build

    config = config_from_arguments(BuildConfig, args)
    with StageBars() as bars:
        result = build(args.model, args.output, config, progress=bars)
    for line in build_summary(result):
        print(line)
    for skipped in result.skipped_images:
        print(f"centernet: calibration skipped {skipped}", file=sys.stderr)
    return EXIT_OK


def build_summary(result) -> list[str]:
    """What a build wrote, in lines: the file, its float layers and why, the fine-tuning
    and the layer search's outcome."""
    spec = result.spec
    batch = "dynamic" if spec.dynamic_batch else spec.batch
    summary = (
        f"wrote {result.path}: {spec.precision}, {result.describe_target()}, batch {batch}, "
        f"{result.size_bytes / 1e6:.1f} MB, {result.seconds:.1f} s"
    )
    if spec.precision.startswith("int8"):
        calib = spec.extra["calibration"]
        summary += (
            f"; {result.nodes_quantized} of {result.nodes_total} convolutions int8 "
            f"({result.int8_share:.1%} of the convolution work), {len(result.kept)} kept "
            f"float; calibrated on {calib['count']} images ({calib['method']})"
        )
        weights = {"enable": "7-bit weights (no VNNI/AMX here: 8-bit products saturate)",
                   "first_layer": "7-bit weights in the first layer"}  # fmt: skip
        if calib.get("overflow_fix") in weights:
            summary += f"; {weights[calib['overflow_fix']]}"
    lines = [summary]
    tuned = result.finetune
    if tuned is not None:
        lines.append(
            f"  fine-tuned {tuned.steps} steps on {tuned.images} calibration images in "
            f"{tuned.seconds:.0f} s: distance to the float outputs {tuned.loss_start:.4f} -> "
            f"{tuned.loss_end:.4f} (first / last tenth of the steps)"
        )
        if tuned.holdout_images:
            verdict = "used" if tuned.applied else "NOT used: it did not help there"
            lines.append(
                f"  on {tuned.holdout_images} held-out calibration images: "
                f"{tuned.holdout_before:.4f} -> {tuned.holdout_after:.4f}; fine-tuned weights "
                f"{verdict}"
            )
    lines += [f"  float: {kept.node}: {kept.reason}" for kept in result.kept]
    if result.search is not None:
        lines += describe_search(result.search, ir=result.ir)
    return lines


def describe_search(found, ir: bool = False) -> list[str]:
    """The int8-mixed search's outcome in words: what it measured, whether the budget was
    met (and where it was judged), and when not, what it reached and kept."""
    where = (
        f"{found.check_images} held-out calibration images"
        if found.check_images
        else "the probe images (no held-out calibration images)"
    )
    reference, int8, final = found.judged()
    tried = f" of {len(found.steps)} tried" if found.steps else ""
    lines = [
        f"  layer search ({found.metric}), judged on {where}: float {reference:.4f}, all int8 "
        f"{int8:.4f}, this build {final:.4f} (drop {found.drop:+.4f} +- {found.noise_sd:.4f}, "
        f"allowed {found.max_drop:g}); {len(found.chosen)} layer(s) kept float{tried}"
    ]
    if found.outcome == "within noise":
        lines.append(
            f"  budget met within noise: the drop left is within {found.noise_sigmas:g} "
            "standard deviations of itself over resamples of those images"
        )
    elif not found.met:
        kept = ", ".join(c.node for c in found.chosen) or "no layer"
        lines.append(
            f"  budget NOT met: this build reaches {final:.4f} against float {reference:.4f} "
            f"(drop {found.drop:.4f} > {found.max_drop:g}) keeping {kept} float; raise "
            "--mixed-max-layers or --max-drop, or fine-tune ("
            + ("--qat-steps, which builds an .onnx)" if ir else "--qat-steps)")
        )
    return lines
