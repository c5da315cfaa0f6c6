"""Measuring models: ``bench`` (images/s and latency), ``report`` (AP and speed of several
builds side by side) and ``demo`` (the whole path on the bundled model)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from centernet.cli.common import (
    EXIT_OK,
    AddCommand,
    add_pipeline_arg,
    add_renamed,
    add_runtime_args,
    announce_engine,
    batches,
    engine_config,
    positive_int,
)
from centernet.cli.progress import StageBars
from centernet.cli.progress import bar as progress_bar
from centernet.errors import CenterNetError


def register(add_command: AddCommand) -> None:
    """Adds ``bench``, ``report`` and ``demo``."""
    add_bench(add_command)
    add_report(add_command)
    add_demo(add_command)


def add_bench(add_command: AddCommand) -> None:
    """The ``bench`` subcommand's arguments."""
    p = add_command("bench", help="images/s and latency per batch size")
    p.add_argument("model", help=".onnx build or .pth checkpoint")
    add_batches(p, "1,4,8")
    p.add_argument("--iterations", type=positive_int, default=20, help="timed runs per batch")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument("--images", default=None, help="folder of images: also time end to end")
    p.add_argument("--json", default=None, help="write the numbers to this file")
    add_runtime_args(p)
    add_pipeline_arg(p)
    p.add_argument(
        "--capture",
        default=None,
        choices=("eager", "graph", "compile"),
        help="torch engine: how passes launch; default: a CUDA graph per batch on cuda, "
        "eager on the CPU; compile: torch.compile reduce-overhead",
    )
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from centernet.engines import open_engine
    from centernet.measure.bench import bench_model
    from centernet.runtime.images import collect_image_paths
    from centernet.runtime.stages import device_pipeline_refusal

    engine = open_engine(args.model, args.engine, engine_config(args))
    if args.pipeline == "device" and engine.name != "torch":
        raise device_pipeline_refusal(engine.name)
    announce_engine(args.engine, engine)
    if engine.name == "torch" and (args.device == "cuda" or args.pipeline == "device"):
        return _bench_on_device(args, engine)
    fixed = engine.batch_size
    batches = args.batches
    if fixed is not None and batches != [fixed]:
        print(f"note: {args.model} is built for batch {fixed}; timing that batch only")
        batches = [fixed]
    paths = []
    if args.images:
        inputs = collect_image_paths([args.images])
        if inputs.unmatched:
            raise CenterNetError(f"{inputs.unmatched[0][0]}: {inputs.unmatched[0][1]}")
        paths = inputs.paths
    with StageBars() as bars:
        result = bench_model(
            engine, str(args.model), batches, args.iterations, args.warmup, paths, bars
        )
    print(result.markdown())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2))
    return EXIT_OK


def _bench_on_device(args: argparse.Namespace, engine) -> int:
    """``bench`` of a torch model on its device: network timed with CUDA events (or on
    the CPU, synchronously), torch eager fp32 of the same network measured in the same run
    on CUDA, and with --images and --pipeline device, end to end from JPEG bytes in memory
    to boxes on the host."""
    from dataclasses import replace

    from centernet.engines import open_engine
    from centernet.measure.bench_device import bench_torch_model
    from centernet.measure.machine import describe_machine
    from centernet.runtime.images import collect_image_paths, read_file

    encoded: list[bytes] = []
    if args.images and args.pipeline == "device":
        inputs = collect_image_paths([args.images])
        if inputs.unmatched:
            raise CenterNetError(f"{inputs.unmatched[0][0]}: {inputs.unmatched[0][1]}")
        encoded = [read_file(path) for path in inputs.paths]
    baseline = None
    if args.device == "cuda":  # the original network as PyTorch runs it by default
        eager = replace(engine_config(args), precision="fp32", channels_last=False)
        baseline = open_engine(args.model, "torch", replace(eager, capture="eager"))
    settings = engine.settings
    with progress_bar(len(args.batches), "bench", unit="batch") as shown:
        rows = bench_torch_model(
            engine, args.batches, args.iterations, args.warmup, encoded, baseline,
            on_row=lambda _: shown.update(1),
        )  # fmt: skip
    print(
        f"{args.model}: {engine.spec.arch} on {args.device}, {settings.precision}"
        f"{', channels_last' if settings.channels_last else ''}, {settings.capture}, input "
        f"{engine.spec.input_size[0]}x{engine.spec.input_size[1]}, {args.iterations} "
        f"iterations, timed {'with CUDA events' if args.device == 'cuda' else 'synchronously'}"
        f"; {describe_machine()}"
    )
    columns = ["batch", "network img/s", "p50 ms", "p90 ms", "p99 ms"]
    columns += ["eager fp32 img/s", "speed-up"] if baseline else []
    if encoded:
        columns += ["end-to-end img/s", "e2e batch p50 ms", "e2e batch p99 ms", "e2e / network"]
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for row in rows:
        t = row.network
        cells = [f"{row.batch}", f"{t.images_per_s:.1f}", f"{t.p50_ms:.2f}", f"{t.p90_ms:.2f}"]
        cells.append(f"{t.p99_ms:.2f}")
        if row.eager_fp32:
            eager_rate = row.eager_fp32.images_per_s
            cells += [f"{eager_rate:.1f}", f"{t.images_per_s / eager_rate:.2f}x"]
        if row.end_to_end_batch:
            e2e_rate = row.end_to_end_images_per_s or 0.0
            one = row.end_to_end_batch
            cells += [f"{e2e_rate:.1f}", f"{one.p50_ms:.2f}", f"{one.p99_ms:.2f}"]
            cells.append(f"{e2e_rate / t.images_per_s:.0%}")
        print("| " + " | ".join(cells) + " |")
    if args.json:
        data = {
            "model": str(args.model),
            "device": args.device,
            "precision": settings.precision,
            "channels_last": settings.channels_last,
            "capture": settings.capture,
            "pipeline": args.pipeline,
            "machine": describe_machine(),
            "rows": [row.to_dict() for row in rows],
        }
        Path(args.json).write_text(json.dumps(data, indent=2))
    return EXIT_OK


def add_batches(parser: argparse.ArgumentParser, default: str) -> None:
    """``--batches 1,4,8``: the batch sizes timed (``--batch``, one int, elsewhere)."""
    add_renamed(
        parser,
        "--batches",
        "--batch",
        type=batches,
        default=default,
        metavar="N,N,...",
        help="batch sizes timed, comma-separated",
    )


def add_report(add_command: AddCommand) -> None:
    """The ``report`` subcommand's arguments."""
    p = add_command("report", help="AP and images/s of several builds, side by side")
    p.add_argument("models", nargs="+", help=".onnx builds (and .pth checkpoints)")
    p.add_argument("--images", required=True, help="folder of the annotated images")
    p.add_argument("--ann", required=True, help="COCO instances.json")
    p.add_argument("--out", required=True, help="folder for report.md/.json/.png")
    p.add_argument("--baseline", default=None, help="checkpoint timed as torch eager fp32")
    add_batches(p, "1,4,8")
    p.add_argument("--iterations", type=positive_int, default=10, help="timed runs per batch")
    p.add_argument("--limit", type=positive_int, default=None, help="first N annotated images")
    p.add_argument("--e2e-images", type=positive_int, default=32, help="files timed end to end")
    add_runtime_args(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from centernet.measure.report import ReportConfig, make_report
    from centernet.measure.report_files import write_report

    config = ReportConfig(
        batches=tuple(args.batches),
        iterations=args.iterations,
        limit=args.limit,
        e2e_images=args.e2e_images,
        engine=args.engine,
        threads=args.threads,
        device=args.device,
        precision=args.precision,
    )
    with StageBars() as bars:
        report = make_report(
            args.models, args.images, args.ann, config, baseline=args.baseline, progress=bars
        )
    files = write_report(report, args.out)
    print(report.accuracy_table())
    print()
    print(report.throughput_table())
    print(f"wrote {', '.join(str(f) for f in files)}")
    return EXIT_OK


def add_demo(add_command: AddCommand) -> None:
    """The ``demo`` subcommand's arguments."""
    p = add_command("demo", help="the whole path on the bundled default model")
    p.add_argument("--out", default="centernet-demo", help="folder for everything it writes")
    add_renamed(
        p,
        "--image-count",
        "--images",
        type=positive_int,
        default=40,
        metavar="N",
        help="held-out synthetic images scored",
    )
    add_renamed(
        p,
        "--calib-count",
        "--calib-images",
        type=positive_int,
        default=16,
        metavar="N",
        help="images to calibrate int8 on",
    )
    p.add_argument("--iterations", type=positive_int, default=5, help="timed runs per batch")
    p.add_argument("--e2e-images", type=positive_int, default=16, help="files timed end to end")
    add_batches(p, "1,4")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from centernet.demo import (
        EVAL_SEED,
        REFERENCE_ACCURACY,
        DemoConfig,
        first_run_report,
        run_demo,
    )

    started = time.perf_counter()
    report = replace(
        first_run_report(),
        batches=tuple(args.batches),
        iterations=args.iterations,
        e2e_images=args.e2e_images,
    )
    config = DemoConfig(images=args.image_count, calib_images=args.calib_count, report=report)

    def step(text: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {text}", flush=True)

    with StageBars(announce=lambda stage: step(f"  {stage}")) as bars:
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
    for note in result.report.notes:
        print(f"\nnote: {note}")
    print("\nWhere the time went (also in report.md)\n")
    print(result.report.stage_table())
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
