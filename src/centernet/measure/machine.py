"""The machine a figure was measured on: CPU model and the flags int8/bf16 speed depends on.

Int8 and bf16 speed differ by CPU kind (VNNI, AMX, native bf16), so every timing this
toolkit reports names them; compare figures only within one machine.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: CPU flags that change int8 / bf16 speed (as /proc/cpuinfo and lscpu spell them).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the host's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model_and_flags(cpuinfo: str | None = None) -> tuple[str, list[str]]:
    """(model name, the SPEED_FLAGS present), from /proc/cpuinfo where there is one."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags":
            flags = set(value.split())
    return model, [f for f in SPEED_FLAGS if f in flags]


def describe_machine() -> str:
    """'AMD EPYC (avx2, avx512f, avx512_vnni, avx512_bf16), 2 CPUs'."""
    model, flags = cpu_model_and_flags()
    shown = f" ({', '.join(flags)})" if flags else " (no AVX2)"
    return f"{model}{shown}, {cpu_count()} CPUs"
