"""int8 that keeps the boxes: AP per build and calibration on the bundled model, and the
speed of the same recipes on the full-size dlav0_34, against torch eager fp32.

    python benchmarks/bench_int8_task.py --val runs/synth_test --limit 300 \
        --calib runs/synth_calib300 --full runs/share/fp32.onnx --work runs/bench/int8_task

Part 1, accuracy: the bundled model exported at its 768x768 (dynamic batch), built as
fp16, int8 before and after the head rule (the heads' last 1x1 convolutions, i.e. the
logits, float), int8 with each calibration choice (minmax, moving-average minmax,
percentile 99.99 / 99.999, entropy; 100 and 300 images), int8-mixed by the older SQNR
rule, and int8-mixed by the task-aware search (label-free and with ``--calib-ann``); every
build scored on ``--val`` with ONNX Runtime. Part 2, speed: the full-size fp32 export
``--full`` built at int8 and at int8-mixed with the float layers the search chose on the
bundled model (same architecture, same node names), network-only images/s at batch 1 and
8 on ONNX Runtime and OpenVINO (f32), against torch eager fp32 of the same architecture in
the same run. Prints markdown tables and writes ``WORK/results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from centernet.datasets import load_annotations
from centernet.engines import EngineConfig, open_engine, options_for
from centernet.export import ExportConfig, export_onnx
from centernet.measure import describe_machine, evaluate_detector, time_network
from centernet.models import load_checkpoint
from centernet.quantize import BuildConfig, CalibrationConfig, SearchConfig, build
from centernet.runtime import Detector

BUNDLED = Path(__file__).resolve().parents[1] / "src/centernet/assets/default_model.pth"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


NO_FLOOR = "int8-mixed new (search, label-free, no noise floor), minmax-ma 100"
DEFAULT_MIXED = "int8-mixed new (search, label-free, noise floor 1), minmax 100 (the default)"


def accuracy_builds(calib: Path, images: Path) -> dict[str, BuildConfig]:
    def cal(method: str, count: int = 100, **kw) -> CalibrationConfig:
        return CalibrationConfig(str(images), count, method, **kw)

    ann = str(calib / "instances.json")
    return {
        "fp16": BuildConfig("fp16"),
        "int8, logits int8 (before the head rule), minmax-ma 100": BuildConfig(
            "int8", cal("minmax-ma"), head_outputs_float=False
        ),
        "int8, minmax 100": BuildConfig("int8", cal("minmax")),
        "int8, minmax-ma 100": BuildConfig("int8", cal("minmax-ma")),
        "int8, percentile 99.99 100": BuildConfig("int8", cal("percentile", percentile=99.99)),
        "int8, percentile 99.999 100": BuildConfig("int8", cal("percentile", percentile=99.999)),
        "int8, entropy (2048 bins) 100": BuildConfig("int8", cal("entropy", bins=2048)),
        "int8, minmax-ma 300": BuildConfig("int8", cal("minmax-ma", 300)),
        "int8, minmax 300": BuildConfig("int8", cal("minmax", 300)),
        "int8-mixed old (heads + SQNR, up to 6), minmax-ma 100": BuildConfig(
            "int8-mixed", cal("minmax-ma"), search=SearchConfig("sqnr", max_layers=6)
        ),
        NO_FLOOR: BuildConfig(
            "int8-mixed", cal("minmax-ma"), search=SearchConfig(max_layers=6, noise_sigmas=0.0)
        ),
        "int8-mixed new (search, label-free, noise floor 1 grey level), minmax-ma 100": (
            BuildConfig("int8-mixed", cal("minmax-ma"), search=SearchConfig(max_layers=6))
        ),
        DEFAULT_MIXED: BuildConfig("int8-mixed", cal("minmax")),
        "int8-mixed new (search, --calib-ann), minmax-ma 100": BuildConfig(
            "int8-mixed", cal("minmax-ma"), search=SearchConfig(max_layers=6, annotations=ann)
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", required=True, help="folder with images/ and instances.json")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--calib", required=True, help="folder with images/ and instances.json")
    parser.add_argument("--full", required=True, help="full-size dlav0_34 fp32 export")
    parser.add_argument("--work", required=True)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument(
        "--only", default=None, help="re-run only the builds whose name contains this text"
    )
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    log(f"machine: {machine}")
    results: dict = {"machine": machine, "accuracy": {}, "speed": {}}
    saved = work / "results.json"
    if saved.exists():
        results["accuracy"] = json.loads(saved.read_text()).get("accuracy", {})

    loaded = load_checkpoint(BUNDLED)
    fp32 = work / "bundled_fp32.onnx"
    export_onnx(loaded.model, fp32, loaded.model_spec(), ExportConfig(dynamic_batch=True))
    annotations = load_annotations(Path(args.val) / "instances.json")
    configs = (
        {} if args.skip_accuracy else accuracy_builds(Path(args.calib), Path(args.calib) / "images")
    )
    if args.only:
        configs = {name: config for name, config in configs.items() if args.only in name}
    for i, (name, config) in enumerate({"fp32": None, **configs}.items()):
        if args.only and config is None and "fp32" in results["accuracy"]:
            continue
        path = fp32
        entry: dict = {}
        if config is not None:
            path = work / f"bundled_{i}.onnx"
            started = time.perf_counter()
            result = build(fp32, path, config)
            entry["build_s"] = time.perf_counter() - started
            entry["float_layers"] = len(result.kept)
            entry["extra_float"] = [
                k.node for k in result.kept if "alone in float" in k.reason or "SQNR" in k.reason
            ]
            if result.search is not None:
                entry["search"] = {
                    "metric": result.search.metric,
                    "reference": result.search.reference,
                    "int8": result.search.int8,
                    "final": result.search.final,
                    "drop_sd": result.search.noise_sd,
                    "best_single_gain": (
                        result.search.ranked[0].gain if result.search.ranked else None
                    ),
                }
        detector = Detector(path, threshold=0.0, max_dets=100, batch_size=8)
        entry["stats"] = evaluate_detector(detector, annotations, Path(args.val) / "images",
                                           args.limit).stats  # fmt: skip
        results["accuracy"][name] = entry
        details = {k: v for k, v in entry.items() if k != "stats"}
        log(f"{name}: AP {entry['stats']['AP']:.4f} {json.dumps(details)}")
        saved.write_text(json.dumps(results, indent=2))

    def chosen_by(name: str) -> list[str]:
        return results["accuracy"].get(name, {}).get("extra_float", [])

    # Part 2: speed of the recipes on the full-size model; int8-mixed builds are int8 with
    # the float layers a search chose on the bundled model (same architecture and names)
    calib = CalibrationConfig(str(Path(args.calib) / "images"), 100, "minmax")
    full_builds = {"int8": BuildConfig("int8", calib)}
    for label, layers in (
        ("int8-mixed, default search", chosen_by(DEFAULT_MIXED)),
        ("int8-mixed, search without the noise floor", chosen_by(NO_FLOOR)),
    ):
        if layers:
            name = f"{label} ({len(layers)} layers float)"
            full_builds[name] = BuildConfig("int8", calib, keep_float_layers=tuple(layers))
        else:
            log(f"{label}: no extra float layer, the same graph as int8")
    chosen_layers = chosen_by(DEFAULT_MIXED)
    paths = {"fp32": Path(args.full)}
    for i, (name, config) in enumerate(full_builds.items()):
        paths[name] = work / f"full_{i}.onnx"
        build(args.full, paths[name], config)
        log(f"built full-size {name}")
    torch_ms = torch_eager_ms(args.iterations)
    results["speed"]["torch eager fp32"] = torch_ms
    for name, path in paths.items():
        for engine_name in ("onnxruntime", "openvino"):
            engine = open_engine(
                path,
                engine_name,
                options_for(engine_name, EngineConfig(cache_dir=str(work / "ov"))),
            )
            timings = {
                b: time_network(engine, b, args.iterations, warmup=2).p50_ms / b for b in (1, 8)
            }
            results["speed"][f"{name}, {engine_name}"] = timings
            log(f"{name} {engine_name}: {timings}")
            saved.write_text(json.dumps(results, indent=2))
    print_tables(results, torch_ms, len(chosen_layers))
    return 0


def torch_eager_ms(iterations: int) -> dict[int, float]:
    """Per-image ms of the full-size dlav0_34 in torch eager fp32, batch 1 and 8."""
    import torch

    from centernet.models import create_model

    torch.manual_seed(0)
    network = create_model("dlav0_34", 80).eval()
    out = {}
    with torch.inference_mode():
        for batch in (1, 8):
            x = torch.randn(batch, 3, 512, 512)
            for _ in range(2):
                network(x)
            times = []
            for _ in range(iterations):
                start = time.perf_counter()
                network(x)
                times.append(time.perf_counter() - start)
            out[batch] = sorted(times)[len(times) // 2] * 1e3 / batch
    return out


def print_tables(results: dict, torch_ms: dict[int, float], chosen: int) -> None:
    print(f"\nMachine: {results['machine']}\n")
    acc = results["accuracy"]
    base = acc["fp32"]["stats"]["AP"]
    print("| build (calibration, images) | AP | AP - fp32 | AP50 | float convs | build s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, entry in acc.items():
        stats = entry["stats"]
        print(f"| {name} | {stats['AP']:.4f} | {stats['AP'] - base:+.4f} | {stats['AP50']:.4f} "
              f"| {entry.get('float_layers', '-')} | {entry.get('build_s', 0):.0f} |")  # fmt: skip
    print(
        f"\nFull-size dlav0_34 at 512, network only, images/s (int8-mixed: {chosen} extra float)\n"
    )
    print("| build, engine | batch 1 | batch 8 | vs torch eager fp32 (b1 / b8) |")
    print("|---|---:|---:|---:|")
    print(
        f"| torch eager fp32 | {1000 / torch_ms[1]:.2f} | {1000 / torch_ms[8]:.2f} | 1.00 / 1.00 |"
    )
    for name, timing in results["speed"].items():
        if name == "torch eager fp32":
            continue
        b1, b8 = timing[1], timing[8]
        print(f"| {name} | {1000 / b1:.2f} | {1000 / b8:.2f} | "
              f"{torch_ms[1] / b1:.2f} / {torch_ms[8] / b8:.2f} |")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
