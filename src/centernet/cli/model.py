"""Making models: ``export`` (checkpoint -> ONNX) and ``build`` (fp32/fp16/int8 builds)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from centernet.cli.common import EXIT_OK, AddCommand, StageBars, input_size, positive_int
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
    try:
        import torch
    except ImportError:
        from centernet.errors import MissingDependencyError

        raise MissingDependencyError("torch", "torch") from None
    from centernet.build.export import ExportConfig, export_onnx
    from centernet.models import DEFAULT_ARCH, create_model, settle_batchnorm
    from centernet.models.checkpoint import LoadedCheckpoint, load_checkpoint
    from centernet.types import DEFAULT_INPUT_SIZE

    if args.checkpoint is None:
        if not args.random_init:
            raise CenterNetError("give a checkpoint, or --random-init for untrained weights")
        torch.manual_seed(args.seed)
        arch = args.arch or DEFAULT_ARCH
        size = args.input_size or DEFAULT_INPUT_SIZE
        network = settle_batchnorm(create_model(arch, args.num_classes), size)
        loaded = LoadedCheckpoint(network, arch, args.num_classes)
        extra = {"weights": "random initialisation: not trained, detections are meaningless"}
    else:
        loaded = load_checkpoint(args.checkpoint, args.arch)
        extra = {"checkpoint": Path(args.checkpoint).name}
    spec = loaded.model_spec(args.input_size, args.classes, extra=extra)
    arch, network, num_classes = loaded.arch, loaded.model, loaded.num_classes
    arch_inferred = loaded.arch_source == "inferred"
    config = ExportConfig(
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        dynamic_size=args.dynamic_size,
        opset=args.opset,
        output_mode="topk" if args.topk_in_graph else "maps",
        verify=not args.no_verify,
    )
    result = export_onnx(network, args.output, spec, config)
    size_mb = result.path.stat().st_size / 1e6
    batch = "N" if config.dynamic_batch else str(config.batch)
    hw = "HxW" if config.dynamic_size else f"{spec.input_size[0]}x{spec.input_size[1]}"
    key = "scores" if config.output_mode == "topk" else "hm"
    check = f", {result.check.summary(key)}" if result.check else ", not verified"
    print(
        f"wrote {result.path}: {arch}, {num_classes} classes, input {batch}x3x{hw}, "
        f"opset {result.opset}, {size_mb:.1f} MB{check}, {result.seconds:.1f} s"
    )
    if arch_inferred:
        print(f"note: architecture {arch} inferred from the checkpoint's keys (--arch to choose)")
    if "weights" in extra:
        print("note: random weights - this model is for trying the tool, not for detecting")
    return EXIT_OK


def add_build(add_command: AddCommand) -> None:
    """The ``build`` subcommand's arguments."""
    p = add_command("build", help="fp32 / fp16 / int8 / int8-mixed build of an export")
    p.add_argument("model", help="the fp32 .onnx from `centernet export`")
    p.add_argument("-o", "--output", required=True, help="the .onnx to write (not the input)")
    p.add_argument("--precision", required=True, choices=("fp32", "fp16", "int8", "int8-mixed"))
    p.add_argument("--calib-images", default=None, help="folder of calibration images (int8)")
    p.add_argument("--calib-count", type=positive_int, default=100, help="images to calibrate on")
    p.add_argument(
        "--calib-method",
        default="minmax",
        choices=("minmax", "minmax-ma", "percentile", "entropy"),
        help="how activation ranges are chosen: extremes, their moving average over batches, "
        "a percentile of |x|, or the entropy (KL) threshold",
    )
    p.add_argument(
        "--calib-percentile", type=float, default=99.999, help="percentile method's percentile"
    )
    p.add_argument(
        "--calib-bins", type=positive_int, default=2048, help="percentile/entropy histogram bins"
    )
    p.add_argument(
        "--calib-ranges",
        default=None,
        metavar="FILE",
        help="activation ranges: reused if FILE exists, written there otherwise (int8 and "
        "int8-mixed of one export on the same images then calibrate once; QDQ .onnx only)",
    )
    p.add_argument(
        "--calib-ann",
        default=None,
        help="instances.json of the calibration images: the int8-mixed search scores real AP "
        "(else agreement with the float model's boxes)",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        default=0.002,
        help="int8-mixed: largest AP drop (0.002 = 0.2 points) against the float model",
    )
    p.add_argument(
        "--mixed-max-layers",
        type=int,
        default=6,
        help="int8-mixed: most convolutions the search keeps float",
    )
    p.add_argument(
        "--mixed-candidates",
        type=positive_int,
        default=None,
        metavar="N",
        help="int8-mixed: try only the N convolutions whose output loses the most SQNR "
        "(quicker; default: every int8 convolution is tried)",
    )
    p.add_argument(
        "--mixed-noise",
        type=float,
        default=2.0,
        help="int8-mixed: the search also stops when the drop left on the check images is "
        "within this many of its standard deviations over bootstrap resamples of those "
        "images (it cannot be told from no drop there); 0: only --max-drop stops it",
    )
    p.add_argument(
        "--mixed-search",
        default="auto",
        choices=("auto", "task", "sqnr", "nncf"),
        help="int8-mixed: how float layers are picked. task: our search by their effect on "
        "the boxes, on the QDQ graph; nncf: NNCF's quantize_with_accuracy_control with the "
        "same score (OpenVINO target only); sqnr: per-layer SQNR with all heads float (the "
        "older rule); auto (default): task for .onnx, nncf for an OpenVINO IR",
    )
    p.add_argument(
        "--target",
        default=None,
        choices=("onnx", "openvino"),
        help="onnx: a QDQ .onnx for any runtime; openvino: an OpenVINO IR (.xml + .bin) "
        "quantized by NNCF. Default: openvino when -o ends in .xml",
    )
    p.add_argument(
        "--bias-correction",
        default="fast",
        choices=("fast", "full", "none"),
        help="openvino target: NNCF's bias correction",
    )
    p.add_argument(
        "--keep-float",
        default=None,
        help="int8: convolutions to keep float, comma-separated node names (as a build "
        "summary lists them), e.g. a recipe found on a smaller model of the same architecture",
    )
    p.add_argument(
        "--probe-images",
        type=positive_int,
        default=32,
        help="int8-mixed: calibration images the layer search picks layers on",
    )
    p.add_argument(
        "--check-images",
        type=int,
        default=64,
        help="int8-mixed: the next calibration images, which the search judges the build on "
        "(never picks on); 0 judges on the probe images",
    )
    p.add_argument(
        "--search-engine",
        default="onnxruntime",
        choices=("onnxruntime", "openvino"),
        help="int8-mixed (onnx target): the engine the layer search runs its trials on, i.e. "
        "the one the build is meant for (int8 arithmetic differs between them)",
    )
    p.add_argument(
        "--qat-steps",
        type=int,
        default=0,
        help="int8/int8-mixed: first fine-tune the weights for this many steps so that the "
        "int8 model reproduces the float model's own outputs on the calibration images "
        "(label-free quantization-aware training with NNCF; needs torch). 0: off",
    )
    p.add_argument(
        "--qat-crop",
        type=int,
        default=256,
        help="fine-tuning: side of the random crops trained on (0: whole images)",
    )
    p.add_argument("--qat-batch", type=positive_int, default=4, help="fine-tuning: crops per step")
    p.add_argument("--qat-lr", type=float, default=1e-6, help="fine-tuning: Adam learning rate")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--batch", type=positive_int, default=None, help="static batch size")
    group.add_argument("--dynamic-batch", action="store_true", help="free batch dimension")
    p.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from centernet.build.finetune import FinetuneConfig
    from centernet.build.quantize import BuildConfig, CalibrationConfig
    from centernet.build.recipe import build

    calibration = None
    if args.calib_images:
        calibration = CalibrationConfig(
            args.calib_images,
            args.calib_count,
            args.calib_method,
            percentile=args.calib_percentile,
            bins=args.calib_bins,
            annotations=args.calib_ann,
            ranges_file=args.calib_ranges,
        )
    config = BuildConfig(
        precision=args.precision,
        calibration=calibration,
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        mixed_search=args.mixed_search,
        max_drop=args.max_drop,
        mixed_max_layers=args.mixed_max_layers,
        mixed_max_candidates=args.mixed_candidates,
        mixed_probe_images=args.probe_images,
        mixed_check_images=args.check_images,
        search_engine=args.search_engine,
        mixed_noise_sigmas=args.mixed_noise,
        target=args.target or ("openvino" if args.output.endswith(".xml") else "onnx"),
        bias_correction=args.bias_correction,
        keep_float_layers=tuple(n.strip() for n in (args.keep_float or "").split(",") if n.strip()),
        finetune=FinetuneConfig(
            steps=args.qat_steps, batch=args.qat_batch, crop=args.qat_crop, lr=args.qat_lr
        )
        if args.qat_steps > 0
        else None,
    )
    with StageBars() as bars:
        result = build(args.model, args.output, config, progress=bars)
    spec = result.spec
    batch = "dynamic" if spec.dynamic_batch else spec.batch
    summary = (
        f"wrote {result.path}: {spec.precision}, batch {batch}, "
        f"{result.size_bytes / 1e6:.1f} MB, {result.seconds:.1f} s"
    )
    if spec.precision.startswith("int8"):
        calib = spec.extra["calibration"]
        summary += (
            f"; {result.nodes_quantized} of {result.nodes_total} convolutions int8, "
            f"{len(result.kept)} kept float; "
            f"calibrated on {calib['count']} images ({calib['method']})"
        )
    print(summary)
    tuned = getattr(result, "finetune", None)  # an OpenVINO build is never fine-tuned
    if tuned is not None:
        print(
            f"  fine-tuned {tuned.steps} steps on {tuned.images} calibration images in "
            f"{tuned.seconds:.0f} s: distance to the float outputs {tuned.loss_start:.4f} -> "
            f"{tuned.loss_end:.4f} (first / last tenth of the steps)"
        )
        if tuned.holdout_images:
            verdict = "used" if tuned.applied else "NOT used: it did not help there"
            print(
                f"  on {tuned.holdout_images} held-out calibration images: "
                f"{tuned.holdout_before:.4f} -> {tuned.holdout_after:.4f}; fine-tuned weights "
                f"{verdict}"
            )
    for kept in result.kept:
        print(f"  float: {kept.node}: {kept.reason}")
    if result.search is not None:
        for line in describe_search(result.search):
            print(line)
    for skipped in result.skipped_images:
        print(f"centernet: calibration skipped {skipped}", file=sys.stderr)
    return EXIT_OK


def describe_search(found) -> list[str]:
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
            "--mixed-max-layers or --max-drop, or fine-tune (--qat-steps)"
        )
    return lines
