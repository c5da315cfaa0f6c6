"""Second GPU look: the network alone per layout (channels_last or not), capture (eager,
CUDA graph, torch.compile) and precision, same untrained dlav0_34 at 512 as bench_gpu.py.

    python benchmarks/gpu_variants.py   # a CUDA machine, about 2 minutes
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

from centernet.engines import EngineConfig, open_engine
from centernet.measure import time_forward
from centernet.models import create_model, save_checkpoint, settle_batchnorm


def main() -> int:
    work = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    net = settle_batchnorm(create_model("dlav0_34", 80, width=1.0), (512, 512))
    ckpt = work / "m.pth"
    save_checkpoint(
        ckpt, net, epoch=0, arch="dlav0_34", arch_args={"width": 1.0}, input_size=(512, 512)
    )
    started = time.perf_counter()
    print("| precision | channels_last | capture | batch | img/s | p50 ms |")
    print("|---|---|---|---|---|---|")
    for precision in ("fp32", "tf32", "fp16", "bf16"):
        for channels_last in (False, True):
            for capture in ("eager", "graph"):
                options = EngineConfig(
                    device="cuda", precision=precision, channels_last=channels_last, capture=capture
                )
                engine = open_engine(ckpt, "torch", options)
                for batch in (8, 32):
                    t = time_forward(engine, batch, 30, 5)
                    print(
                        f"| {precision} | {channels_last} | {capture} | {batch} | "
                        f"{t.images_per_s:.0f} | {t.p50_ms:.2f} |",
                        flush=True,
                    )
                del engine
                torch.cuda.empty_cache()
    for precision in ("fp16",):
        if time.perf_counter() - started > 150:
            break
        try:
            options = EngineConfig(device="cuda", precision=precision, capture="compile")
            engine = open_engine(ckpt, "torch", options)
            for batch in (8, 32):
                t = time_forward(engine, batch, 30, 10)
                print(
                    f"| {precision} | True | compile | {batch} | {t.images_per_s:.0f} | "
                    f"{t.p50_ms:.2f} |",
                    flush=True,
                )
        except Exception as exc:
            print(f"compile failed: {type(exc).__name__}: {exc}"[:400])
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
