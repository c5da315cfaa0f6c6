"""Time pre-processing of real photos and post-processing of one 80x128x128 output.

    python benchmarks/bench_prepost.py [--photos DIR] [--repeat 200]

Pre-processing: decoded BGR photo -> (3, 512, 512) float32 input (fix_res), median over
repeats, per photo. Post-processing: the four maps of one image -> Detections (K=100),
on two kinds of heatmap: uniform noise (worst case, ~1 peak in 9 cells) and smooth maps
like a trained model's (few peaks). With torch installed, the same decode written the
original way (torch _nms/_topk/gather, then a per-point inverse affine) is timed in the
same run as the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from centernet.runtime import (
    PostprocessConfig,
    PreprocessConfig,
    make_letterbox,
    postprocess,
    preprocess_into,
)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def heatmaps(kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if kind == "uniform":
        hm = rng.random((1, 80, 128, 128), dtype=np.float32)
    else:  # smooth logits around -6 with a few strong blobs: sparse peaks
        noise = rng.normal(size=(80, 128, 128)).astype(np.float32)
        logits = np.stack([cv2.GaussianBlur(n, (0, 0), 3) * 8 - 6 for n in noise])
        for c, y, x in zip(
            rng.integers(0, 80, 20), rng.integers(0, 128, 20), rng.integers(0, 128, 20)
        ):
            logits[c, max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] += 8
        hm = (1 / (1 + np.exp(-logits)))[None].astype(np.float32)
    pad = np.pad(hm, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-1)
    windows = np.lib.stride_tricks.sliding_window_view(pad, (3, 3), axis=(2, 3))
    return {
        "hm_max": windows.max(axis=(-1, -2)).astype(np.float32),
        "hm": hm,
        "wh": rng.uniform(1, 40, (1, 2, 128, 128)).astype(np.float32),
        "reg": rng.random((1, 2, 128, 128), dtype=np.float32),
    }


def original_style_decode(outputs: dict[str, np.ndarray], box, k: int = 100):
    """ctdet_decode + ctdet_post_process as the original code does it (torch, point loop)."""
    import torch

    heat = torch.from_numpy(outputs["hm"])
    hmax = torch.nn.functional.max_pool2d(heat, 3, stride=1, padding=1)
    heat = heat * (hmax == heat).float()
    batch, cat, height, width = heat.shape
    scores, inds = torch.topk(heat.view(batch, cat, -1), k)
    ys, xs = (inds // width).float(), (inds % width).float()
    score, ind = torch.topk(scores.view(batch, -1), k)
    clses = ind // k
    inds = inds.view(batch, -1).gather(1, ind)
    ys, xs = ys.view(batch, -1).gather(1, ind), xs.view(batch, -1).gather(1, ind)
    reg = torch.from_numpy(outputs["reg"]).view(batch, 2, -1).permute(0, 2, 1)
    wh = torch.from_numpy(outputs["wh"]).view(batch, 2, -1).permute(0, 2, 1)
    reg = reg.gather(1, inds[..., None].expand(-1, -1, 2))
    wh = wh.gather(1, inds[..., None].expand(-1, -1, 2))
    xs, ys = xs + reg[..., 0], ys + reg[..., 1]
    dets = torch.stack(
        [
            xs - wh[..., 0] / 2,
            ys - wh[..., 1] / 2,
            xs + wh[..., 0] / 2,
            ys + wh[..., 1] / 2,
            score,
            clses.float(),
        ],
        dim=2,
    )[0].numpy()
    out = np.zeros((k, 4))
    for p in range(k):  # transform_preds: one affine_transform call per point
        for j in (0, 2):
            out[p, j : j + 2] = box.output_to_original @ np.array([*dets[p, j : j + 2], 1.0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=None, help="folder of JPEGs (default: bundled)")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    folder = (
        Path(args.photos)
        if args.photos
        else Path(str(resources.files("centernet.assets") / "photos"))
    )
    photos = sorted(folder.glob("*.jpg"))
    config = PreprocessConfig()
    out = np.empty((3, 512, 512), np.float32)
    print("| pre-processing (photo -> 3x512x512) | size | median ms |")
    print("|---|---|---|")
    pre = []
    for path in photos:
        image = cv2.imread(str(path))
        ms = median_ms(lambda image=image: preprocess_into(image, config, out), args.repeat)
        pre.append(ms)
        print(f"| {path.name} | {image.shape[1]}x{image.shape[0]} | {ms:.2f} |")
    print(f"| **median of photos** | | **{statistics.median(pre):.2f}** |")

    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    box = make_letterbox(906, 600, config)
    print("\n| post-processing (80x128x128, K=100) | peaks | ours ms | original-style ms | ratio |")
    print("|---|---|---|---|---|")
    for kind in ("uniform", "smooth"):
        outputs = heatmaps(kind, rng)
        peaks = int((outputs["hm"] == outputs["hm_max"]).sum())
        ours = median_ms(lambda o=outputs: postprocess(o, [box], PostprocessConfig()), args.repeat)
        if torch is not None:
            base = median_ms(
                lambda o=outputs: original_style_decode(o, box), max(20, args.repeat // 5)
            )
            print(f"| {kind} | {peaks} | {ours:.2f} | {base:.2f} | {base / ours:.1f}x |")
        else:
            print(f"| {kind} | {peaks} | {ours:.2f} | (no torch) | |")


if __name__ == "__main__":
    main()
