"""int8 on a full-size trained network: AP per build, where int8's loss goes, and speed.

    python benchmarks/bench_int8_full.py --checkpoint ../shared/models/dlav0_34_shapes6.pth \
        --data ../shared/data/shapes6 --calib-count 150 --work runs/bench/int8_full
    python benchmarks/bench_int8_full.py --checkpoint src/centernet/assets/default_model.pth \
        --calib runs/synth_calib --val runs/synth_test --calib-count 100 --work DIR \
        --skip ...   # the bundled model: separate calibration and held-out sets

The split is fixed: the images of ``--data`` sorted by file name, the first
``--calib-count`` to calibrate on (the int8-mixed search picks on the first 32 of them and
judges on the next 32), the others to score on; never scored on a calibration image.

Part 1, accuracy (cached per build in ``WORK/results.json``; ``--only NAME`` re-runs the
builds whose name contains NAME): fp32, fp16, int8, int8-mixed (the defaults), int8 with
label-free fine-tuning (``--qat-steps``), and the OpenVINO IRs (fp32, NNCF int8, NNCF
int8-mixed by accuracy control), each scored on the held-out images with the engine it
is meant for (a QDQ .onnx on ONNX Runtime, the default, and on OpenVINO; an IR on
OpenVINO). Next to each AP difference, its paired-bootstrap standard deviation over the
held-out images (the noise of that comparison). Part 2, where the loss goes: per-output
error of int8 against fp32 (SQNR of hm, wh, reg; the search's output error), AP with int8
hm and float wh/reg and the other way round, and AP with each block of the network kept
float. Part 3, speed (``--speed``): network-only images/s at batch 1 and 8 of each build
on its engines, torch eager fp32 of the same network in the same run, interleaved rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from centernet.datasets import detections_to_coco, load_annotations
from centernet.engines import EngineConfig, open_engine, options_for
from centernet.export import ExportConfig, export_onnx
from centernet.measure import describe_machine
from centernet.models import load_checkpoint
from centernet.quantize import (
    BuildConfig,
    CalibrationConfig,
    FinetuneConfig,
    SearchConfig,
    build,
)
from centernet.runtime import (
    PostprocessConfig,
    PreprocessConfig,
    postprocess,
    preprocess_into,
    read_image,
)

BLOCKS = {  # network blocks by ONNX node-name prefix, for the per-block sensitivity
    "base level0-1": ("/network/base/level0/", "/network/base/level1/"),
    "base level2": ("/network/base/level2/",),
    "base level3": ("/network/base/level3/",),
    "base level4": ("/network/base/level4/",),
    "base level5": ("/network/base/level5/",),
    "dla_up ida_0": ("/network/dla_up/ida_0/",),
    "dla_up ida_1": ("/network/dla_up/ida_1/",),
    "dla_up ida_2": ("/network/dla_up/ida_2/",),
    "heads (3x3)": ("/network/hm/", "/network/wh/", "/network/reg/"),
}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class StageLog:
    """Build progress as log lines: each stage when it starts and ends, with the time."""

    def __init__(self) -> None:
        self.stage, self.started = "", time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.stage = stage
            log(f"  {time.perf_counter() - self.started:6.0f} s  {stage} ({total})")


# ---------------------------------------------------------------- data


def split(data: Path, calib_count: int, work: Path) -> tuple[Path, Path]:
    """work/calib and work/val: images/ (links) and instances.json of each part."""
    full = json.loads((data / "instances.json").read_text())
    images = sorted(full["images"], key=lambda im: im["file_name"])
    parts = {"calib": images[:calib_count], "val": images[calib_count:]}
    for name, part in parts.items():
        folder = work / name
        (folder / "images").mkdir(parents=True, exist_ok=True)
        ids = {im["id"] for im in part}
        for im in part:
            link = folder / "images" / im["file_name"]
            if not link.exists():
                link.symlink_to((data / "images" / im["file_name"]).resolve())
        subset = {
            "images": part,
            "annotations": [a for a in full["annotations"] if a["image_id"] in ids],
            "categories": full["categories"],
        }
        (folder / "instances.json").write_text(json.dumps(subset))
    return work / "calib", work / "val"


class HeldOut:
    """The held-out images, pre-processed once (a memory-mapped array), scored on COCO."""

    def __init__(self, val: Path, input_size: tuple[int, int], work: Path) -> None:
        self.annotations = load_annotations(val / "instances.json")
        self.images = self.annotations.images
        cache = work / f"val_input_{input_size[0]}.npy"
        config = PreprocessConfig(input_size=input_size)
        self.boxes = []
        fresh = not cache.exists()
        shape = (len(self.images), 3, *input_size)
        array = np.lib.format.open_memmap(cache, "w+", np.float32, shape) if fresh else None
        for i, image in enumerate(self.images):
            tensor, box = preprocess_into(read_image(val / "images" / image.file_name), config)
            self.boxes.append(box)
            if array is not None:
                array[i] = tensor
        if array is not None:
            array.flush()
        self.inputs = np.load(cache, mmap_mode="r")
        truth = json.loads(Path(self.annotations.path).read_text())
        self.category_ids = sorted(c["id"] for c in truth["categories"])  # class index order

    def outputs(self, model: Path, engine: str, work: Path, batch: int = 8) -> dict:
        """Raw output maps of ``model`` on every held-out image (cached by file and engine)."""
        cache = work / "outputs" / f"{model.name}.{engine}.npz"
        if cache.exists() and cache.stat().st_mtime > model.stat().st_mtime:
            return dict(np.load(cache))
        runner = open_engine(
            model, engine, options_for(engine, EngineConfig(cache_dir=str(work / "ov_cache")))
        )
        rows = runner.batch_size or batch
        parts: dict[str, list] = {}
        for start in range(0, len(self.inputs), rows):
            chunk = np.ascontiguousarray(self.inputs[start : start + rows])
            padded = np.zeros((rows, *chunk.shape[1:]), np.float32)
            padded[: len(chunk)] = chunk
            for key, value in runner(padded).items():
                parts.setdefault(key, []).append(value[: len(chunk)])
        outputs = {key: np.concatenate(value) for key, value in parts.items()}
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **outputs)
        return outputs

    def results(self, outputs: dict) -> list[list[dict]]:
        """COCO results per image (threshold 0, 100 boxes, as COCO evaluation expects)."""
        found = postprocess(outputs, self.boxes, PostprocessConfig(max_dets=100, threshold=0.0))
        return [
            detections_to_coco(d, self.category_ids, file_name=im.file_name, image_id=im.id)
            for im, d in zip(self.images, found)
        ]

    def ap(self, per_image: list[list[dict]], sample: np.ndarray | None = None) -> dict:
        """COCO stats of the results, on the held-out images or a resample of them."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        truth = json.loads(Path(self.annotations.path).read_text())
        by_image: dict[int, list] = {}
        for a in truth["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        order = np.arange(len(self.images)) if sample is None else sample
        dataset = {"images": [], "annotations": [], "categories": truth["categories"]}
        results = []
        for new_id, index in enumerate(order, start=1):
            dataset["images"].append({"id": new_id, "width": 1, "height": 1})
            for a in by_image.get(self.images[index].id, []):
                entry = {**a, "id": len(dataset["annotations"]) + 1, "image_id": new_id}
                dataset["annotations"].append(entry)
            results += [
                {**{k: v for k, v in r.items() if k != "file_name"}, "image_id": new_id}
                for r in per_image[index]
            ]
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = dataset
            coco.createIndex()
            evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return {"AP": float(evaluator.stats[0]), "AP50": float(evaluator.stats[1])}

    def paired_sd(self, a: list, b: list, rounds: int = 50) -> float:
        """Standard deviation of AP(b) - AP(a) over bootstrap resamples of the images."""
        rng = np.random.default_rng(0)
        diffs = []
        for _ in range(rounds):
            sample = rng.integers(0, len(self.images), len(self.images))
            diffs.append(self.ap(b, sample)["AP"] - self.ap(a, sample)["AP"])
        return float(np.std(diffs))


# ---------------------------------------------------------------- builds


def builds(calib: Path, count: int, qat_steps: int) -> dict[str, tuple[str, BuildConfig]]:
    """name -> (file suffix, config): the defaults a user gets, plus the options."""
    images = str(calib / "images")
    cal = CalibrationConfig(images, count)
    ann = SearchConfig(annotations=str(calib / "instances.json"))
    return {
        "fp16": (".onnx", BuildConfig("fp16")),
        "int8": (".onnx", BuildConfig("int8", cal)),
        "int8-mixed": (".onnx", BuildConfig("int8-mixed", cal)),
        "int8-mixed --calib-ann": (".onnx", BuildConfig("int8-mixed", cal, search=ann)),
        f"int8 --qat-steps {qat_steps}": (
            ".onnx",
            BuildConfig("int8", cal, finetune=FinetuneConfig(steps=qat_steps)),
        ),
        "IR fp32": (".xml", BuildConfig("fp32")),
        "IR int8 (NNCF)": (".xml", BuildConfig("int8", cal)),
        "IR int8-mixed (NNCF accuracy control)": (
            ".xml",
            BuildConfig("int8-mixed", cal),
        ),
        "IR int8-mixed --probe-images 96 --check-images 54": (
            ".xml",
            BuildConfig(
                "int8-mixed",
                cal,
                search=SearchConfig(probe_images=96, check_images=54),
            ),
        ),
    }


def command_of(name: str, count: int) -> str:
    """The `centernet build` command line a build stands for."""
    if name.startswith("IR "):
        precision = name.split()[1]
        tail = f"-o model.{precision}.xml"
    else:
        precision = name.split()[0]
        tail = f"-o model.{precision}.onnx"
    options = " ".join(name.split()[1:]) if not name.startswith("IR ") else ""
    calib = f" --calib-images calib/images --calib-count {count}" if "int8" in precision else ""
    if "--calib-ann" in options:
        options = options.replace("--calib-ann", "--calib-ann calib/instances.json")
    return f"centernet build fp32.onnx {tail} --precision {precision}{calib} {options}".strip()


def summarize_build(result) -> dict:
    entry = {
        "build_s": round(result.seconds, 1),
        "float_convs": len(result.kept),
        "kept": [{"node": k.node, "reason": k.reason} for k in result.kept],
    }
    if result.search is not None:
        entry["search"] = result.search.summary()
    if getattr(result, "finetune", None) is not None:
        entry["finetune"] = {
            "seconds": round(result.finetune.seconds, 1),
            "loss_start": result.finetune.loss_start,
            "loss_end": result.finetune.loss_end,
        }
    return entry


# ---------------------------------------------------------------- analysis


def sqnr_db(got: np.ndarray, want: np.ndarray) -> float:
    noise = float(np.mean((got.astype(np.float64) - want) ** 2))
    return 10 * np.log10(float(np.mean(want.astype(np.float64) ** 2)) / max(noise, 1e-30))


def analysis(held: HeldOut, work: Path, fp32: Path, int8: Path, engine: str) -> dict:
    """Per-output error, hybrid outputs and per-block float of the int8 build."""
    import onnx

    from centernet.modelfile import load_centernet_onnx, write_spec
    from centernet.quantize import keep_float, output_error, prepare_for_quantization

    ref = held.outputs(fp32, engine, work)
    q = held.outputs(int8, engine, work)
    base = held.results(ref)
    out: dict = {
        "sqnr_db": {k: round(sqnr_db(q[k], ref[k]), 2) for k in ("hm", "wh", "reg")},
        "output_error": output_error(q, ref, 0.3),
    }
    hybrids = {
        "int8 hm, float wh+reg": {**ref, "hm": q["hm"], "hm_max": q["hm_max"]},
        "float hm, int8 wh+reg": {**q, "hm": ref["hm"], "hm_max": ref["hm_max"]},
        "int8 wh only": {**ref, "wh": q["wh"]},
        "int8 reg only": {**ref, "reg": q["reg"]},
        "all int8": q,
    }
    out["hybrids"] = {}
    for name, maps in hybrids.items():
        results = held.results(maps)
        out["hybrids"][name] = {"AP": held.ap(results)["AP"], "sd": held.paired_sd(base, results)}
        log(f"hybrid {name}: {out['hybrids'][name]}")
    prepared = prepare_for_quantization(fp32, work / "prepared.onnx")
    qdq = onnx.load(str(int8))
    _, spec = load_centernet_onnx(int8)
    out["blocks"] = {}
    for name, prefixes in BLOCKS.items():
        nodes = [
            n.name for n in qdq.graph.node
            if n.op_type == "Conv" and n.name.startswith(prefixes)
        ]  # fmt: skip
        edited = keep_float(qdq, prepared, nodes)
        write_spec(edited, spec)
        path = work / f"block_{name.replace(' ', '_').replace('(', '').replace(')', '')}.onnx"
        onnx.save(edited, str(path))
        results = held.results(held.outputs(path, engine, work))
        out["blocks"][name] = {
            "convs": len(nodes),
            "AP": held.ap(results)["AP"],
            "sd": held.paired_sd(base, results),
        }
        log(f"block {name} float: {out['blocks'][name]}")
    return out


# ---------------------------------------------------------------- speed


def torch_eager(checkpoint: Path):
    """A callable running the checkpoint's network in torch eager fp32 (no decode)."""
    import torch

    network = load_checkpoint(checkpoint).model.eval()

    def run(x: np.ndarray) -> None:
        with torch.inference_mode():
            network(torch.from_numpy(x))

    return run


def speed(
    paths: dict[str, tuple[Path, str]], checkpoint: Path, work: Path, args, size: tuple
) -> dict:
    """Per-image ms (median of rounds of medians) at batch 1 and 8; rounds interleave the
    builds so that a load change on the shared machine hits every build alike."""
    runners = {"torch eager fp32": torch_eager(checkpoint)}
    for name, (path, engine) in paths.items():
        runners[name] = open_engine(
            path, engine, options_for(engine, EngineConfig(cache_dir=str(work / "ov_cache")))
        )
    rng = np.random.default_rng(0)
    inputs = {b: rng.standard_normal((b, 3, *size)).astype(np.float32) for b in (1, 8)}
    samples: dict[str, dict[int, list[float]]] = {n: {1: [], 8: []} for n in runners}
    for round_ in range(args.rounds):
        for name, run in runners.items():
            for batch, x in inputs.items():
                run(x)  # warm-up
                times = []
                for _ in range(args.iterations):
                    start = time.perf_counter()
                    run(x)
                    times.append(time.perf_counter() - start)
                samples[name][batch].append(float(np.median(times)) * 1e3 / batch)
        log(f"speed round {round_ + 1}/{args.rounds} done")
    return {n: {b: float(np.median(v)) for b, v in s.items()} for n, s in samples.items()}


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", help="folder with images/ and instances.json, to split")
    parser.add_argument("--calib", help="instead of --data: calibration folder (images/ ...)")
    parser.add_argument("--val", help="instead of --data: held-out folder (images/ ...)")
    parser.add_argument("--calib-count", type=int, default=150)
    parser.add_argument("--work", required=True)
    parser.add_argument("--qat-steps", type=int, default=300)
    parser.add_argument(
        "--only", default=None, help="(re)build only builds containing one of these (a,b,..)"
    )
    parser.add_argument("--skip", default=None, help="comma-separated builds to leave out")
    parser.add_argument("--analysis", action="store_true", help="part 2: where the loss goes")
    parser.add_argument("--speed", action="store_true", help="part 3: images/s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    saved = work / "results.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    results["machine"] = describe_machine()
    results["load"] = os.getloadavg()
    log(f"machine: {results['machine']}, load {results['load']}")
    if args.data:
        calib, val = split(Path(args.data), args.calib_count, work)
    else:
        calib, val = Path(args.calib), Path(args.val)
    fp32 = work / "fp32.onnx"
    loaded = load_checkpoint(args.checkpoint)
    size = tuple(loaded.model_spec().input_size)
    if not fp32.exists():
        export_onnx(loaded.model, fp32, loaded.model_spec(), ExportConfig(dynamic_batch=True))
    del loaded
    held = HeldOut(val, size, work)
    accuracy = results.setdefault("accuracy", {})
    skip = set((args.skip or "").split(","))
    paths: dict[str, Path] = {"fp32": fp32}
    for i, (name, (suffix, config)) in enumerate(builds(calib, args.calib_count,
                                                       args.qat_steps).items()):  # fmt: skip
        path = work / f"build_{i}{suffix}"
        if name in skip:
            continue
        wanted = not args.only or any(part in name for part in args.only.split(","))
        if wanted and not (path.exists() and name in accuracy and not args.only):
            log(f"building {name}")
            result = build(fp32, path, config, progress=StageLog())
            accuracy[name] = {
                **summarize_build(result),
                "command": command_of(name, args.calib_count),
            }
            log(f"built {name}: {json.dumps(accuracy[name].get('search', {}))[:400]}")
            saved.write_text(json.dumps(results, indent=1))
        if path.exists() and name in accuracy:
            paths[name] = path
    base = held.results(held.outputs(fp32, "onnxruntime", work))
    scores = results.setdefault("scores", {})
    for name, path in paths.items():
        engines = ("openvino",) if path.suffix == ".xml" else ("onnxruntime", "openvino")
        for engine in engines:
            key = f"{name} | {engine}"
            if key in scores and scores[key].get("mtime") == path.stat().st_mtime:
                continue
            found = held.results(held.outputs(path, engine, work))
            scores[key] = {
                **held.ap(found),
                "diff_sd": held.paired_sd(base, found) if name != "fp32" else 0.0,
                "mtime": path.stat().st_mtime,
            }
            log(f"{key}: {scores[key]}")
            saved.write_text(json.dumps(results, indent=1))
    if args.analysis:
        int8 = paths["int8"]
        results["analysis"] = {e: analysis(held, work, fp32, int8, e)
                               for e in ("onnxruntime", "openvino")}  # fmt: skip
        saved.write_text(json.dumps(results, indent=1))
    if args.speed:
        timed = {
            "fp32 | onnxruntime": (fp32, "onnxruntime"),
            "fp32 | openvino": (fp32, "openvino"),
        }
        for name, path in paths.items():
            if "int8" not in name:
                continue
            if path.suffix == ".onnx":
                timed[f"{name} | onnxruntime"] = (path, "onnxruntime")
            timed[f"{name} | openvino"] = (path, "openvino")
        timing = speed(timed, Path(args.checkpoint), work, args, size)
        results["speed"] = {n: {str(b): ms for b, ms in t.items()} for n, t in timing.items()}
        results["speed_load"] = os.getloadavg()
        saved.write_text(json.dumps(results, indent=1))
    print_tables(results)
    return 0


def print_tables(results: dict) -> None:
    print(f"\nMachine: {results['machine']}\n")
    scores = results.get("scores", {})
    accuracy = results.get("accuracy", {})
    base = scores.get("fp32 | onnxruntime", {}).get("AP", 0.0)
    print("| build | engine | AP | AP - fp32 (± sd) | AP50 | float convs | build s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for key, s in scores.items():
        name, engine = key.split(" | ")
        entry = accuracy.get(name, {})
        print(f"| {name} | {engine} | {s['AP']:.4f} | {s['AP'] - base:+.4f} ± {s['diff_sd']:.4f} "
              f"| {s['AP50']:.4f} | {entry.get('float_convs', '-')} | "
              f"{entry.get('build_s', '-')} |")  # fmt: skip
    for name, entry in accuracy.items():
        print(f"\n{name}: `{entry.get('command', '')}`")
        for kept in entry.get("kept", []):
            if "search" in kept["reason"] or "NNCF" in kept["reason"]:
                print(f"- {kept['node']}: {kept['reason']}")
        if "search" in entry:
            print(f"- search: {json.dumps(entry['search'])}")
        if "finetune" in entry:
            print(f"- fine-tuning: {json.dumps(entry['finetune'])}")
    for engine, found in results.get("analysis", {}).items():
        print(f"\nWhere int8 loses ({engine}): SQNR dB {found['sqnr_db']}, output error "
              f"{found['output_error']:.4f}")  # fmt: skip
        print("\n| variant | AP | ± sd vs fp32 |\n|---|---:|---:|")
        for name, v in {
            **found["hybrids"],
            **{f"int8, {k} float": v for k, v in found["blocks"].items()},
        }.items():
            print(f"| {name} | {v['AP']:.4f} | {v['sd']:.4f} |")  # fmt: skip
    timing = results.get("speed")
    if timing:
        torch_ms = timing["torch eager fp32"]
        print(f"\nSpeed (load average {results.get('speed_load')}), images/s\n")
        print("| build, engine | batch 1 | batch 8 | vs torch eager fp32 (b1 / b8) |")
        print("|---|---:|---:|---:|")
        for name, t in timing.items():
            b1, b8 = t[str(1)], t[str(8)]
            ratio = f"{torch_ms[str(1)] / b1:.2f} / {torch_ms[str(8)] / b8:.2f}"
            print(f"| {name} | {1000 / b1:.2f} | {1000 / b8:.2f} | {ratio} |")


if __name__ == "__main__":
    raise SystemExit(main())
