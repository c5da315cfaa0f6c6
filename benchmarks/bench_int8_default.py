"""The int8 a user gets by default, against the speed the CPU allows and fp32's accuracy.

    python benchmarks/bench_int8_default.py --checkpoint ../shared/models/dlav0_34_shapes6.pth \
        --data ../shared/data/shapes6 --work runs/bench/int8_default

The split is fixed: the images of ``--data`` sorted by file name, the first
``--calib-split`` (300) form the calibration folder, of which the builds use their default
count (100; ``--calib-count`` to change), the last ``--val-count`` (500) are scored on.

Builds (cached in WORK; ``--rebuild NAME`` makes one again): the anchor any OpenVINO user
gets in four lines (``nncf.quantize`` with its defaults on ``openvino.convert_model`` of
the same export, the same calibration images), and ``centernet build`` with its default
settings as an OpenVINO IR (``-o model.int8.xml``, ``-o model.int8-mixed.xml``: the
README's path) and as a QDQ .onnx (``-o model.int8.onnx``, ``model.int8-mixed.onnx``), with
the seconds each build took.

Accuracy: COCO AP of each build on the held-out images, on the engines that run it (the
IRs on OpenVINO, the .onnx on ONNX Runtime and on OpenVINO), against fp32 on the same
engine, with the 95 % paired bootstrap interval of the difference (``--rounds``).

Speed (``--speed``): network-only ms per image at batch 1 and 8, OpenVINO with the f32
inference hint and ``--threads``, in alternating rounds with one compiled model alive at
a time (several live models disturb each other's threads); ONNX Runtime's runs of the
.onnx builds in the same rounds; each as a share of the anchor's speed.

Kernels: for every build, the quantized convolutions each engine runs in float.
Writes WORK/int8_default.json and prints markdown tables, the CPU named.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

from centernet.datasets import category_ids_for, detections_to_coco, load_annotations
from centernet.engines import EngineConfig
from centernet.measure import PerImageAP, describe_machine, paired_difference
from centernet.quantize import BuildConfig, CalibrationConfig, build
from centernet.runtime import Detector, DetectorConfig

BUILDS = ("int8.xml", "int8-mixed.xml", "int8.onnx", "int8-mixed.onnx")


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def split(data: Path, calib_count: int, val_count: int, work: Path) -> tuple[Path, dict]:
    """Calibration images as links in WORK/calib; the held-out images' ground truth."""
    names = sorted(p.name for p in (data / "images").iterdir())
    calib = work / "calib"
    calib.mkdir(parents=True, exist_ok=True)
    for name in names[:calib_count]:
        link = calib / name
        if not link.exists():
            link.symlink_to((data / "images" / name).resolve())
    held = set(names[-val_count:])
    if held & set(names[:calib_count]):
        raise SystemExit("calibration and held-out images overlap: lower a count")
    everything = json.loads((data / "instances.json").read_text())
    images = [im for im in everything["images"] if im["file_name"] in held]
    ids = {im["id"] for im in images}
    truth = {
        "images": images,
        "annotations": [a for a in everything["annotations"] if a["image_id"] in ids],
        "categories": everything["categories"],
    }
    return calib, truth


def export(checkpoint: Path, work: Path) -> Path:
    from centernet.export import ExportConfig, export_checkpoint

    fp32 = work / "fp32.onnx"
    if not fp32.exists():
        export_checkpoint(checkpoint, fp32, ExportConfig(dynamic_batch=True))
    return fp32


def build_anchor(fp32: Path, calib: Path, count: int, out: Path) -> float:
    """``nncf.quantize`` with its defaults, as an OpenVINO user would write it."""
    import nncf
    import openvino as ov

    from centernet.modelfile.openvino_ir import write_ir_spec
    from centernet.modelfile.spec import read_file_spec
    from centernet.quantize.calibration import ImageCalibrationReader, calibration_paths

    started = time.perf_counter()
    spec = read_file_spec(fp32)
    reader = ImageCalibrationReader(calibration_paths(calib, count, 1), spec, 1)
    data = []
    while (batch := reader.get_next()) is not None:
        data.append(batch["input"])
    model = ov.convert_model(str(fp32))
    quantized = nncf.quantize(model, nncf.Dataset(data), subset_size=len(data))
    spec.precision = "int8"
    write_ir_spec(quantized, spec)  # so that the project's engines open it
    ov.save_model(quantized, str(out))
    return time.perf_counter() - started


def make_builds(fp32: Path, calib: Path, args: argparse.Namespace) -> dict[str, float]:
    """name -> build seconds (cached in WORK/builds.json)."""
    record = args.work / "builds.json"
    seconds = json.loads(record.read_text()) if record.exists() else {}
    calibration = CalibrationConfig(str(calib), args.calib_count or CalibrationConfig("").count)
    for name in ("anchor.xml", *BUILDS):
        path = args.work / name
        if path.exists() and name in seconds and name not in args.rebuild:
            continue
        log(f"building {name}")
        if name == "anchor.xml":
            seconds[name] = build_anchor(fp32, calib, calibration.count, path)
        else:
            precision = name.split(".")[0]
            seconds[name] = build(fp32, path, BuildConfig(precision, calibration)).seconds
        record.write_text(json.dumps(seconds, indent=1))
        log(f"  {name}: {seconds[name]:.0f} s")
    return seconds


def detect(model: Path, engine: str, truth: dict, images: Path, work: Path) -> list[dict]:
    """COCO results of ``model`` on the held-out images (cached per model and engine)."""
    cache = work / "results" / f"{model.name}.{engine}.json"
    if cache.exists() and cache.stat().st_mtime > model.stat().st_mtime:
        return json.loads(cache.read_text())
    cache.parent.mkdir(exist_ok=True)
    log(f"detecting with {model.name} on {engine}")
    settings = DetectorConfig(
        engine=engine, threshold=0.0, max_dets=100, batch_size=4, options=EngineConfig(threads=2)
    )
    detector = Detector(model, settings)
    annotations = load_annotations(work / "truth.json")
    category_ids = category_ids_for(detector.spec.class_names, annotations)
    results = []
    paths = [str(images / im["file_name"]) for im in truth["images"]]
    for image, found in zip(truth["images"], detector.stream(paths)):
        results += detections_to_coco(found.detections, category_ids, image_id=image["id"])
    cache.write_text(json.dumps(results))
    return results


def accuracy(work: Path, truth: dict, images: Path, rounds: int) -> list[dict]:
    rows = []
    runs = [("anchor.xml", "openvino")]
    runs += [(name, "openvino") for name in BUILDS]
    runs += [(name, "onnxruntime") for name in BUILDS if name.endswith(".onnx")]
    reference = {
        engine: PerImageAP(truth, detect(work / "fp32.onnx", engine, truth, images, work))
        for engine in ("openvino", "onnxruntime")
    }
    for engine, scored in reference.items():
        rows.append({"build": "fp32.onnx", "engine": engine, "ap": scored.ap(),
                     "ap_per_iou": scored.ap_per_threshold()})  # fmt: skip
    for name, engine in runs:
        scored = PerImageAP(truth, detect(work / name, engine, truth, images, work))
        difference = paired_difference(reference[engine], scored, rounds)
        rows.append({"build": name, "engine": engine, "ap": scored.ap(),
                     "drop_points": -difference.difference * 100,
                     "ci_points": [difference.low * 100, difference.high * 100],
                     "sd_points": difference.sd * 100,
                     # where the loss is: at every threshold, or only at 0.9-0.95
                     "ap_per_iou": scored.ap_per_threshold()})  # fmt: skip
        log(f"  {name} on {engine}: AP {scored.ap():.4f}, vs fp32 {difference.points()}")
    return rows


def runner(path: Path, engine: str, threads: int):
    if engine == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads),
            "INFERENCE_PRECISION_HINT": ov.Type.f32})  # fmt: skip
        request = compiled.create_infer_request()
        return lambda x: request.infer([x])
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def speed(work: Path, rounds: int, threads: int, batches: list[int]) -> dict[str, list[float]]:
    """(build on engine, batch) -> ms per image in each round."""
    runs = [("fp32.onnx", "openvino"), ("anchor.xml", "openvino")]
    runs += [(name, "openvino") for name in BUILDS]
    runs += [(name, "onnxruntime") for name in BUILDS if name.endswith(".onnx")]
    times: dict[str, list[float]] = {}
    x = {b: np.random.default_rng(0).standard_normal((b, 3, 512, 512)).astype(np.float32)
         for b in batches}  # fmt: skip
    for round_ in range(rounds):
        log(f"speed round {round_ + 1} of {rounds}")
        for name, engine in runs:
            run = runner(work / name, engine, threads)
            for batch in batches:
                run(x[batch])
                repeats = 5 if batch == 1 else 2
                spent = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    run(x[batch])
                    spent.append(time.perf_counter() - started)
                key = f"{name} on {engine}, batch {batch}"
                times.setdefault(key, []).append(float(np.median(spent)) * 1000 / batch)
            del run
            gc.collect()
    return times


def kernels(work: Path) -> dict[str, dict[str, int]]:
    """build -> engine -> quantized convolutions that engine runs in float."""
    import openvino as ov

    from centernet.quantize.kernels import float_fallbacks, openvino_int8_convolutions
    from centernet.quantize.nncf_graph import int8_convolutions

    found: dict[str, dict[str, int]] = {}
    for name in ("anchor.xml", *BUILDS):
        path = work / name
        if name.endswith(".onnx"):
            found[name] = {e: len(float_fallbacks(path, e)) for e in ("onnxruntime", "openvino")}
        else:
            model = ov.Core().read_model(str(path))
            quantized = {n.removesuffix("/WithoutBiases") for n in int8_convolutions(model)}
            runs = openvino_int8_convolutions(path)
            found[name] = {"openvino": sum(runs.get(n) is False for n in quantized)}
    return found


def print_tables(result: dict) -> None:
    print(f"\nMachine: {result['machine']}\n")
    print("| build | engine | AP | drop vs fp32 (points) | 95 % interval |")
    print("|---|---|---|---|---|")
    for row in result.get("accuracy", []):
        drop = row.get("drop_points")
        ci = row.get("ci_points")
        print(f"| {row['build']} | {row['engine']} | {row['ap']:.4f} | "
              + (f"{-drop:+.2f} | [{ci[0]:+.2f}, {ci[1]:+.2f}] |" if drop is not None
                 else "(reference) | |"))  # fmt: skip
    fp32 = {r["engine"]: r for r in result.get("accuracy", []) if r["build"] == "fp32.onnx"}
    if fp32:  # AP per IoU threshold, in points against fp32 on the same engine
        shown = {0: ".50", 5: ".75", 8: ".90", 9: ".95"}
        print("\n| build | engine | " + " | ".join(f"IoU {t} vs fp32" for t in shown.values())
              + " |\n|---|---|" + "---|" * len(shown))  # fmt: skip
        for row in result["accuracy"]:
            base = fp32.get(row["engine"])
            if row["build"] == "fp32.onnx" or base is None or "ap_per_iou" not in row:
                continue
            cells = [100 * (row["ap_per_iou"][i] - base["ap_per_iou"][i]) for i in shown]
            print(f"| {row['build']} | {row['engine']} | "
                  + " | ".join(f"{c:+.2f}" for c in cells) + " |")  # fmt: skip
    times = result.get("speed")
    if times:
        print("\n| build | engine | batch | ms per image (median of rounds) | share of the "
              "anchor's speed |\n|---|---|---|---|---|")
        for key, values in times.items():
            name, rest = key.split(" on ")
            engine, batch = rest.split(", batch ")
            anchor = np.median(times[f"anchor.xml on openvino, batch {batch}"])
            median = np.median(values)
            print(f"| {name} | {engine} | {batch} | {median:.1f} ({min(values):.1f}-"
                  f"{max(values):.1f}) | {anchor / median:.0%} |")
    if "builds" in result:
        print("\n| build | seconds |\n|---|---|")
        for name, seconds in result["builds"].items():
            print(f"| {name} | {seconds:.0f} |")
    if "kernels" in result:
        print("\n| build | quantized convolutions run in float |\n|---|---|")
        for name, per in result["kernels"].items():
            print(f"| {name} | " + ", ".join(f"{e}: {n}" for e, n in per.items()) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="images/ + instances.json")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/int8_default"))
    parser.add_argument("--calib-split", type=int, default=300, help="calibration folder")
    parser.add_argument("--calib-count", type=int, default=None, help="default: the build's")
    parser.add_argument("--val-count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--rebuild", nargs="*", default=[], help="builds to make again")
    parser.add_argument("--speed", action="store_true", help="also time the builds")
    parser.add_argument("--speed-rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    calib, truth = split(args.data, args.calib_split, args.val_count, args.work)
    (args.work / "truth.json").write_text(json.dumps(truth))
    fp32 = export(args.checkpoint, args.work)
    result: dict = {"machine": describe_machine(), "builds": make_builds(fp32, calib, args)}
    if not args.skip_accuracy:
        result["accuracy"] = accuracy(args.work, truth, args.data / "images", args.rounds)
    result["kernels"] = kernels(args.work)
    if args.speed:
        batches = [int(b) for b in args.batches.split(",")]
        result["speed"] = speed(args.work, args.speed_rounds, args.threads, batches)
    (args.work / "int8_default.json").write_text(json.dumps(result, indent=1))
    print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
