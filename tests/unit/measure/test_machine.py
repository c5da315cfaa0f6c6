"""The machine line names the CPU model and the flags int8/bf16 speed depends on."""

from __future__ import annotations

from centernet.measure.machine import SPEED_FLAGS, cpu_model_and_flags, describe_machine

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8 sha_ni
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
"""
ZEN3 = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma sha_ni\n"


def test_flags_that_matter_in_a_fixed_order():
    model, flags = cpu_model_and_flags(XEON)
    assert model == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert flags == ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"]
    assert cpu_model_and_flags(ZEN3) == ("AMD EPYC 7B13", ["avx2"])


def test_this_machine_is_described():
    line = describe_machine()
    assert line.endswith("CPUs") and "(" in line
    _, flags = cpu_model_and_flags()
    assert all(flag in SPEED_FLAGS and flag in line for flag in flags)
