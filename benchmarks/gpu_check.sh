#!/usr/bin/env bash
# The prepared GPU check (issue 33) for a lent CUDA machine (the `device` tool), at most
# 8 minutes: the CUDA tests, then benchmarks/gpu_check.py (the GPU table at batch 1/8/32
# per precision against eager fp32, end to end from JPEG bytes, the full-size model's
# host/device parity and AP per precision, the profile). Run from the repository root; OUT
# is where everything goes (the device tool sets it). Before: on the developer machine,
#   python benchmarks/gpu_pack.py --checkpoint ../shared/models/dlav0_34_shapes6.pth --data ../shared/data/shapes6
# and carry ["gpu_carry"] (and .whl/ with the small wheels the machine lacks: imagesize,
# pycocotools; see /work/.library/device/README.md).
set -uo pipefail
OUT="${OUT:-runs/gpu_check}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import torch, torchvision, cv2; print("torch", torch.__version__, "torchvision", torchvision.__version__, "opencv", cv2.__version__)'
  lscpu | grep -m1 'Model name'
} 2>&1 | tee "$OUT/machine.txt"
# The CUDA tests and the device pipeline's CPU tests on this machine's libraries.
timeout 150 python3 -m pytest -q -p no:cacheprovider \
  tests/integration/runtime/device/test_stages.py tests/unit/runtime/device/test_warp.py \
  tests/unit/engines/test_torch_runner.py 2>&1 | tee "$OUT/tests.log"
FULL=()
if [ -f gpu_carry/full_size_fp16.pth ]; then
  FULL=(--checkpoint gpu_carry/full_size_fp16.pth --images gpu_carry/images_set/images
        --ann gpu_carry/images_set/instances.json)
fi
# bench_gpu stops optional work (torch.compile) after its --budget-s.
timeout "${CHECK_TIMEOUT:-300}" python3 benchmarks/gpu_check.py --out "$OUT" "${FULL[@]}" \
  --table-args "--budget-s ${BENCH_BUDGET:-150} --iterations 30" 2>&1 | tee "$OUT/check.log"
