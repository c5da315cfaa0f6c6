"""The ``centernet`` command: parse arguments, call the library, print a summary.

Expected failures (CenterNetError) end as one line on stderr and exit status 2; a run in
which some images could not be read exits 1 after finishing the rest.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from centernet import __version__
from centernet.errors import CenterNetError

EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR = 0, 1, 2


class _HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default in --help, except for flags and options without one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" in text
            or not action.option_strings
            or action.default in (None, False, argparse.SUPPRESS)
        ):
            return text
        return f"{text} (default: %(default)s)"


def _input_size(text: str) -> tuple[int, int]:
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def _progress(iterable, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="img", file=sys.stderr, disable=None)


class _StageBars:
    """Draws library ``Progress(stage, done, total)`` reports: one tqdm bar per stage on a
    terminal, and (with ``announce``) a line when a stage starts, for logs without bars."""

    def __init__(self, announce: Callable[[str], None] | None = None) -> None:
        self.announce = announce
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            if self.announce:
                self.announce(stage)
            self.bar = tqdm(total=total, desc=stage, file=sys.stderr, disable=None, leave=False)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.stage = None, None

    def __enter__(self) -> _StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _engine_options(args: argparse.Namespace):
    from centernet.engines import EngineOptions

    return EngineOptions(
        device=args.device,
        threads=args.threads,
        arch=getattr(args, "arch", None),
        classes_file=getattr(args, "classes", None),
        precision=args.precision,
    )


def _add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """Which engine runs the model, where, with how many threads, in what arithmetic."""
    from centernet.engines import ENGINES, RUNTIME_PRECISIONS

    parser.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="auto: torch for .pth, onnxruntime for .onnx",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where it runs")
    parser.add_argument("--threads", type=_positive_int, default=None, help="engine threads")
    parser.add_argument(
        "--precision",
        default=None,
        choices=RUNTIME_PRECISIONS,
        help="run-time arithmetic; default: the model's own (fp32 float layers). "
        "bf16: openvino engine on CPUs with native bf16 (avx512_bf16, AMX)",
    )


def _add_max_pixels(parser: argparse.ArgumentParser) -> None:
    from centernet.images import DEFAULT_MAX_PIXELS

    parser.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="skip images whose header declares more pixels (checked before decoding)",
    )


def _add_engine_args(parser: argparse.ArgumentParser) -> None:
    _add_runtime_args(parser)
    _add_max_pixels(parser)
    parser.add_argument(
        "--batch",
        type=_positive_int,
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


# ---------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        from centernet.errors import MissingDependencyError

        raise MissingDependencyError("torch", "torch") from None
    from centernet.export import ExportConfig, export_onnx
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


# ---------------------------------------------------------------- detect


def _unique_name(path: str, taken: set[str]) -> str:
    name = Path(path).name
    stem, suffix, n = Path(name).stem, Path(name).suffix, 1
    while name in taken:
        name = f"{stem}_{n}{suffix}"
        n += 1
    taken.add(name)
    return name


def cmd_detect(args: argparse.Namespace) -> int:
    import cv2

    from centernet.datasets.coco import category_ids_for, detections_to_coco, load_annotations
    from centernet.draw import draw_detections
    from centernet.images import collect_image_paths
    from centernet.pipeline import Detector
    from centernet.profiling import StageProfile

    if not args.images and not args.file_list:
        raise CenterNetError("no images given (files, folders, globs or --file-list)")
    inputs = collect_image_paths(args.images, args.file_list)
    paths = inputs.paths
    detector = Detector(
        args.model,
        engine=args.engine,
        threshold=args.threshold,
        max_dets=args.max_dets,
        batch_size=args.batch,
        keep_res=args.keep_res,
        options=_engine_options(args),
        max_pixels=args.max_pixels,
    )
    for item, reason in inputs.unmatched:  # same rule as an unreadable file: named, skipped
        print(f"centernet: skipped {item}: {reason}", file=sys.stderr)
    annotations = load_annotations(args.ann) if args.ann else None
    ids_by_name = {im.file_name: im.id for im in annotations.images} if annotations else {}
    category_ids = category_ids_for(detector.spec.class_names, annotations)
    out = Path(args.out)
    (out / "images" if args.save_images else out).mkdir(parents=True, exist_ok=True)
    entries, failed, boxes, taken = [], 0, 0, set()
    profile = StageProfile() if args.profile else None
    started = time.perf_counter()
    for result in _progress(detector.stream(paths, profile), len(paths), "detect"):
        if not result.ok:
            failed += 1
            print(f"centernet: skipped {result.source}: {result.error}", file=sys.stderr)
            continue
        name = Path(result.source).name
        entries += detections_to_coco(
            result.detections, category_ids, file_name=name, image_id=ids_by_name.get(name)
        )
        boxes += len(result.detections)
        if args.save_images:
            drawn = draw_detections(result.image, result.detections, detector.spec.class_names)
            cv2.imwrite(str(out / "images" / _unique_name(result.source, taken)), drawn)
    seconds = time.perf_counter() - started
    (out / "detections.json").write_text(json.dumps(entries))
    done = len(paths) - failed
    unmatched = len(inputs.unmatched)
    print(
        f"detected {done} of {len(paths)} images in {seconds:.1f} s "
        f"({done / max(seconds, 1e-9):.1f} img/s): {boxes} boxes >= {args.threshold}; "
        f"{failed} unreadable"
        + (f", {unmatched} folders/patterns matched nothing" if unmatched else "")
        + f"; wrote {out / 'detections.json'}"
        + (f" and {done} images in {out / 'images'}" if args.save_images else "")
    )
    if profile is not None:
        print(_profile_table(profile))
    if "weights" in detector.spec.extra:
        print(f"note: {detector.spec.extra['weights']}")
    return EXIT_SOME_FAILED if failed or unmatched else EXIT_OK


def _profile_table(profile) -> str:
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


# ---------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace) -> int:
    from centernet.datasets.coco import load_annotations
    from centernet.evaluate import COCO_STAT_LABELS, COCO_STAT_NAMES, evaluate_detector
    from centernet.pipeline import Detector

    annotations = load_annotations(args.ann)
    if not annotations.images:
        raise CenterNetError(f"{args.ann} lists no images")
    detector = Detector(
        args.model,
        engine=args.engine,
        threshold=0.0,
        max_dets=100,
        batch_size=args.batch,
        keep_res=args.keep_res,
        options=_engine_options(args),
        max_pixels=args.max_pixels,
    )
    count = min(args.limit or len(annotations.images), len(annotations.images))
    outcome = evaluate_detector(
        detector,
        annotations,
        args.images,
        args.limit,
        progress=lambda stream: _progress(stream, count, "eval"),
    )
    for source, reason in outcome.failures:
        print(f"centernet: skipped {source}: {reason}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "detections.json").write_text(json.dumps(outcome.results))
    report = {
        "model": str(args.model),
        "precision": detector.spec.precision,
        "engine": detector.engine.name,
        "annotations": str(args.ann),
        "images": outcome.images,
        "failed": len(outcome.failures),
        "seconds": outcome.seconds,
        "metrics": outcome.stats,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    stats = outcome.stats
    for name, label in zip(COCO_STAT_NAMES, COCO_STAT_LABELS):
        print(f"{label:<50} = {stats[name]:.3f}")
    print(
        f"evaluated {outcome.images - len(outcome.failures)} of {outcome.images} images "
        f"in {outcome.seconds:.1f} s; AP {stats['AP']:.3f} AP50 {stats['AP50']:.3f}; "
        f"wrote {out / 'metrics.json'}"
    )
    return EXIT_SOME_FAILED if outcome.failures else EXIT_OK


# ---------------------------------------------------------------- build


def cmd_build(args: argparse.Namespace) -> int:
    from centernet.quantize import BuildConfig, CalibrationConfig, build

    calibration = None
    if args.calib_images:
        calibration = CalibrationConfig(args.calib_images, args.calib_count, args.calib_method)
    config = BuildConfig(
        precision=args.precision,
        calibration=calibration,
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        mixed_max_layers=args.mixed_max_layers,
    )
    with _StageBars() as bars:
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
    for kept in result.kept:
        print(f"  float: {kept.node}: {kept.reason}")
    for skipped in result.skipped_images:
        print(f"centernet: calibration skipped {skipped}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- bench


def _batches(text: str) -> list[int]:
    from centernet.bench import parse_batches

    try:
        return parse_batches(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_bench(args: argparse.Namespace) -> int:
    from centernet.bench import time_end_to_end, time_network
    from centernet.engines import open_engine
    from centernet.images import collect_image_paths
    from centernet.machine import describe_machine
    from centernet.pipeline import Detector

    engine = open_engine(args.model, args.engine, _engine_options(args))
    fixed = engine.batch_size
    batches = args.batch
    if fixed is not None and batches != [fixed]:
        print(f"note: {args.model} is built for batch {fixed}; timing that batch only")
        batches = [fixed]
    paths = []
    if args.images:
        inputs = collect_image_paths([args.images])
        if inputs.unmatched:
            raise CenterNetError(f"{inputs.unmatched[0][0]}: {inputs.unmatched[0][1]}")
        paths = inputs.paths
    rows = []
    for batch in batches:
        timing = time_network(engine, batch, args.iterations, args.warmup)
        row = {"batch": batch, "network": timing, "e2e": None}
        if paths:
            detector = Detector(engine, batch_size=batch)
            count = max(len(paths), 2 * batch)
            work = (paths * (count // len(paths) + 1))[:count]
            row["e2e"] = time_end_to_end(detector, work, warmup=batch)
        rows.append(row)
    spec = engine.spec
    arithmetic = getattr(engine, "inference_precision", "fp32")
    machine = describe_machine()
    print(
        f"{args.model}: {spec.arch} {spec.precision} (float layers in {arithmetic}), engine "
        f"{engine.name}, input {spec.input_size[0]}x{spec.input_size[1]}, "
        f"{args.iterations} iterations; {machine}"
    )
    header = "| batch | network img/s | p50 ms | p90 ms | p99 ms |" + (
        " end-to-end img/s | end to end / network |" if paths else ""
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for row in rows:
        t = row["network"]
        line = (
            f"| {t.batch} | {t.images_per_s:.2f} | {t.p50_ms:.1f} | {t.p90_ms:.1f} "
            f"| {t.p99_ms:.1f} |"
        )
        if paths:
            line += f" {row['e2e']:.2f} | {row['e2e'] / t.images_per_s:.0%} |"
        print(line)
    if args.json:
        data = {
            "model": str(args.model),
            "engine": engine.name,
            "precision": spec.precision,
            "inference_precision": arithmetic,
            "machine": machine,
            "rows": [
                {
                    "batch": r["batch"],
                    "network_images_per_s": r["network"].images_per_s,
                    "p50_ms": r["network"].p50_ms,
                    "p90_ms": r["network"].p90_ms,
                    "p99_ms": r["network"].p99_ms,
                    "e2e_images_per_s": r["e2e"],
                }
                for r in rows
            ],
        }
        Path(args.json).write_text(json.dumps(data, indent=2))
    return EXIT_OK


# ---------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from centernet.report import ReportConfig, make_report, write_report

    config = ReportConfig(
        batches=tuple(args.batch),
        iterations=args.iterations,
        limit=args.limit,
        e2e_images=args.e2e_images,
        engine=args.engine,
        threads=args.threads,
        device=args.device,
        precision=args.precision,
    )
    with _StageBars() as bars:
        report = make_report(
            args.models, args.images, args.ann, config, baseline=args.baseline, progress=bars
        )
    files = write_report(report, args.out)
    print(report.accuracy_table())
    print()
    print(report.throughput_table())
    print(f"wrote {', '.join(str(f) for f in files)}")
    return EXIT_OK


# ---------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from centernet.demo import EVAL_SEED, REFERENCE_ACCURACY, DemoConfig, run_demo
    from centernet.report import ReportConfig

    started = time.perf_counter()
    config = DemoConfig(
        images=args.images,
        calib_images=args.calib_images,
        report=ReportConfig(iterations=args.iterations, e2e_images=args.e2e_images),
    )

    def step(text: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {text}", flush=True)

    with _StageBars(announce=lambda stage: step(f"  {stage}")) as bars:
        result = run_demo(args.out, config, on_step=step, progress=bars)
    names = ", ".join(result.class_names)
    print(
        f"\nAccuracy per precision: COCO AP on this demo's {config.images} held-out synthetic "
        f"images (synth --seed {EVAL_SEED}). The bundled model's published figure is "
        f"{REFERENCE_ACCURACY}: a small set scores differently.\n"
    )
    print(result.report.accuracy_table())
    print("\nImages/s per precision and batch (network only and end to end)")
    print(f"on {result.report.machine}\n")
    print(result.report.throughput_table())
    print(
        f"\ndemo done in {time.perf_counter() - started:.0f} s: report {result.out / 'report.md'}, "
        f"plot {result.out / 'report.png'}, {len(result.annotated)} annotated images in "
        f"{result.out / 'annotated'}"
    )
    print(
        f"note: the bundled model knows only its {len(result.class_names)} synthetic shapes "
        f"({names}); on the photos every object gets one of those labels. The photos show the "
        "path from file to annotated image, not accuracy: for real objects, export your own "
        "checkpoint (e.g. an original CenterNet COCO model)."
    )
    return EXIT_OK


# ---------------------------------------------------------------- synth


def cmd_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from centernet.datasets.synthetic import CLASSES, SynthConfig, write_dataset

    started = time.perf_counter()
    with tqdm(total=args.n, desc="synth", unit="img", file=sys.stderr, disable=None) as bar:
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


# ---------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        from centernet.errors import MissingDependencyError

        raise MissingDependencyError("torch", "torch") from None
    from tqdm import tqdm

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
        resume=args.resume,
        init=args.init,
    )
    bar = None

    def report(event) -> None:
        nonlocal bar
        if event.kind == "step":
            if bar is None:
                bar = tqdm(
                    total=event.steps_per_epoch,
                    desc=f"epoch {event.epoch}",
                    unit="step",
                    file=sys.stderr,
                    disable=None,
                    leave=False,
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


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet", description="CenterNet from checkpoint to fast inference."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    # every subcommand's --help shows the defaults
    add_command = functools.partial(commands.add_parser, formatter_class=_HelpFormatter)

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
        type=_input_size,
        default=None,
        help="512 or HxW (default: the size stored in the checkpoint, else 512)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--batch", type=_positive_int, default=1, help="static batch size")
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
    p.add_argument("--num-classes", type=_positive_int, default=80, help="with --random-init")
    p.add_argument("--seed", type=int, default=0, help="with --random-init")
    p.set_defaults(func=cmd_export)

    p = add_command("build", help="fp32 / fp16 / int8 / int8-mixed build of an export")
    p.add_argument("model", help="the fp32 .onnx from `centernet export`")
    p.add_argument("-o", "--output", required=True, help="the .onnx to write (not the input)")
    p.add_argument("--precision", required=True, choices=("fp32", "fp16", "int8", "int8-mixed"))
    p.add_argument("--calib-images", default=None, help="folder of calibration images (int8)")
    p.add_argument("--calib-count", type=_positive_int, default=100, help="images to calibrate on")
    p.add_argument(
        "--calib-method",
        default="minmax",
        choices=("minmax", "percentile", "entropy"),
        help="how activation ranges are chosen from the calibration images",
    )
    p.add_argument(
        "--mixed-max-layers",
        type=int,
        default=6,
        help="int8-mixed: most convolutions kept float besides the heads",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--batch", type=_positive_int, default=None, help="static batch size")
    group.add_argument("--dynamic-batch", action="store_true", help="free batch dimension")
    p.set_defaults(func=cmd_build)

    p = add_command("detect", help="run a model on images; COCO JSON + annotated copies")
    p.add_argument("model", help=".onnx export or .pth checkpoint")
    p.add_argument("images", nargs="*", help="files, folders or globs")
    p.add_argument("--file-list", default=None, help="a file naming one image per line")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--save-images", action="store_true", help="write annotated copies")
    p.add_argument("--threshold", type=float, default=0.3, help="drop boxes scoring below")
    p.add_argument("--max-dets", type=_positive_int, default=100, help="boxes per image (K)")
    p.add_argument("--ann", default=None, help="COCO annotations: image ids and categories")
    p.add_argument(
        "--profile", action="store_true", help="print where the time went, stage by stage"
    )
    _add_engine_args(p)
    p.set_defaults(func=cmd_detect)

    p = add_command("eval", help="COCO mAP of a model on annotated images")
    p.add_argument("model", help=".onnx export or .pth checkpoint")
    p.add_argument("--images", required=True, help="folder of the annotated images")
    p.add_argument("--ann", required=True, help="COCO instances.json")
    p.add_argument("--limit", type=_positive_int, default=None, help="first N images by id")
    p.add_argument("--out", default="runs/eval", help="folder for metrics.json and detections")
    _add_engine_args(p)
    p.set_defaults(func=cmd_eval)

    p = add_command("bench", help="images/s and latency per batch size")
    p.add_argument("model", help=".onnx build or .pth checkpoint")
    p.add_argument("--batch", type=_batches, default="1,4,8", help="batch sizes, comma-separated")
    p.add_argument("--iterations", type=_positive_int, default=20, help="timed runs per batch")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument("--images", default=None, help="folder of images: also time end to end")
    p.add_argument("--json", default=None, help="write the numbers to this file")
    _add_runtime_args(p)
    p.set_defaults(func=cmd_bench)

    p = add_command("report", help="AP and images/s of several builds, side by side")
    p.add_argument("models", nargs="+", help=".onnx builds (and .pth checkpoints)")
    p.add_argument("--images", required=True, help="folder of the annotated images")
    p.add_argument("--ann", required=True, help="COCO instances.json")
    p.add_argument("--out", required=True, help="folder for report.md/.json/.png")
    p.add_argument("--baseline", default=None, help="checkpoint timed as torch eager fp32")
    p.add_argument("--batch", type=_batches, default="1,4,8", help="batch sizes, comma-separated")
    p.add_argument("--iterations", type=_positive_int, default=10, help="timed runs per batch")
    p.add_argument("--limit", type=_positive_int, default=None, help="first N annotated images")
    p.add_argument("--e2e-images", type=_positive_int, default=32, help="files timed end to end")
    _add_runtime_args(p)
    p.set_defaults(func=cmd_report)

    p = add_command("demo", help="the whole path on the bundled default model")
    p.add_argument("--out", default="centernet-demo", help="folder for everything it writes")
    p.add_argument("--images", type=_positive_int, default=40, help="held-out synthetic images")
    p.add_argument(
        "--calib-images", type=_positive_int, default=32, help="images to calibrate int8 on"
    )
    p.add_argument("--iterations", type=_positive_int, default=8, help="timed runs per batch")
    p.add_argument("--e2e-images", type=_positive_int, default=24, help="files timed end to end")
    p.set_defaults(func=cmd_demo)

    p = add_command("synth", help="write the deterministic synthetic shapes set")
    p.add_argument("--out", required=True, help="folder for images/ and instances.json")
    p.add_argument("-n", type=_positive_int, default=1000, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="same seed, same images")
    p.set_defaults(func=cmd_synth)

    p = add_command("train", help="train a CenterNet model on a COCO-format folder")
    p.add_argument("--data", required=True, help="folder with instances.json and images/")
    p.add_argument("--out", required=True, help="folder for checkpoints")
    p.add_argument("--arch", default="dlav0_34", help="architecture to train")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (<1: smaller)")
    p.add_argument("--epochs", type=_positive_int, default=10, help="passes over the data")
    p.add_argument("--batch", type=_positive_int, default=16, help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    p.add_argument("--input-size", type=int, default=512, help="square inference input size")
    p.add_argument("--crop", type=int, default=None, help="train on crops of this size")
    p.add_argument("--val-data", default=None, help="validation folder (default: split off 10%%)")
    p.add_argument("--val-every", type=_positive_int, default=1, help="epochs between AP checks")
    p.add_argument("--val-limit", type=_positive_int, default=300, help="validation images")
    p.add_argument("--workers", type=int, default=2, help="data loading processes")
    p.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: cuda if present"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", default=None, help="model_last.pth of an earlier run")
    p.add_argument("--init", default=None, help="initial weights (shapes that match)")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CenterNetError as exc:
        print(f"centernet: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("centernet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
