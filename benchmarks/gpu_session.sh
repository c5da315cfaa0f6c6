#!/usr/bin/env bash
# One prepared run on a lent CUDA machine (the `device` tool): the CUDA tests, then the
# GPU table of benchmarks/bench_gpu.py. Run from the repository root; OUT is where the logs
# go (the device tool sets it). The machine has torch/torchvision/onnxruntime but no
# imagesize/pycocotools: carry their wheels in .whl/ (see /work/.library/device/README.md).
set -uo pipefail
OUT="${OUT:-runs/gpu_session}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import torch, torchvision, onnxruntime, cv2; print("torch", torch.__version__, "torchvision", torchvision.__version__, "onnxruntime", onnxruntime.__version__, "opencv", cv2.__version__)'
  lscpu | grep -m1 'Model name'
} 2>&1 | tee "$OUT/machine.txt"
# The CUDA tests and the device pipeline's CPU tests on this machine's libraries.
timeout 200 python3 -m pytest -q -p no:cacheprovider \
  tests/integration/runtime/device/test_stages.py tests/unit/runtime/device/test_warp.py \
  tests/unit/engines/test_torch_runner.py 2>&1 | tee "$OUT/tests.log"
# The GPU table (bench_gpu stops optional work after --budget-s).
timeout "${BENCH_TIMEOUT:-330}" python3 benchmarks/bench_gpu.py --out "$OUT" --budget-s "${BENCH_BUDGET:-240}" \
  2>&1 | tee "$OUT/bench.log"
