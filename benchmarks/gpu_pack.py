"""Pack what the GPU check needs from ../shared into ``gpu_carry/`` (git-ignored), small
enough to travel to a lent GPU machine (the device tool carries at most 64 MiB with the
repository): the full-size checkpoint with its weights stored in fp16 (36 MB instead of
74 MB; the check loads them into fp32, so host and device run the same fp32 model) and the
first N held-out images of shapes6 (images 300-799) with their boxes.

    python benchmarks/gpu_pack.py --checkpoint ../shared/models/dlav0_34_shapes6.pth \\
        --data ../shared/data/shapes6 --images 100

Then `run` with carry ["gpu_carry"]: ``benchmarks/gpu_check.sh`` finds it there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

CARRY = Path("gpu_carry")


def pack_checkpoint(source: Path, target: Path) -> int:
    """The checkpoint with floating tensors in fp16; returns the bytes written."""
    data = torch.load(source, map_location="cpu", weights_only=False)
    state = data.get("state_dict", data)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    extra = {k: v for k, v in data.items() if k not in ("state_dict", "optimizer")}
    torch.save({**extra, "state_dict": half}, target)
    return target.stat().st_size


def pack_images(data: Path, target: Path, first: int, count: int) -> int:
    """Images ``first``.. ``first + count`` (by file name order) and their annotations."""
    coco = json.loads((data / "instances.json").read_text())
    images = sorted(coco["images"], key=lambda im: im["file_name"])[first : first + count]
    keep = {im["id"] for im in images}
    (target / "images").mkdir(parents=True, exist_ok=True)
    for im in images:
        shutil.copy(data / "images" / im["file_name"], target / "images" / im["file_name"])
    subset = {
        **coco,
        "images": images,
        "annotations": [a for a in coco["annotations"] if a["image_id"] in keep],
    }
    (target / "instances.json").write_text(json.dumps(subset))
    return len(images)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="images/ + instances.json")
    p.add_argument("--first", type=int, default=300, help="first held-out image")
    p.add_argument("--images", type=int, default=100, help="held-out images to carry")
    p.add_argument("--out", type=Path, default=CARRY)
    args = p.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    size = pack_checkpoint(args.checkpoint, args.out / "full_size_fp16.pth")
    count = pack_images(args.data, args.out / "images_set", args.first, args.images)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: checkpoint {size / 1e6:.1f} MB, {count} images; {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
