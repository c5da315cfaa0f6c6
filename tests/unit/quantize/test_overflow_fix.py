"""The IR's weight width follows the CPU: 7 bits where uint8 x int8 pair sums saturate."""

from centernet.quantize.config import NncfConfig
from centernet.quantize.nncf_common import resolved_overflow_fix


def test_auto_is_7_bit_weights_only_without_an_int8_dot_product():
    auto = NncfConfig()
    assert auto.overflow_fix == "auto"
    assert resolved_overflow_fix(auto, ["avx2"]) == "enable"  # Zen 3: AVX2 only
    assert resolved_overflow_fix(auto, ["avx2", "avx512f"]) == "enable"
    assert resolved_overflow_fix(auto, ["avx2", "avx512f", "avx512_vnni"]) == "first_layer"
    assert resolved_overflow_fix(auto, ["avx2", "avx_vnni"]) == "first_layer"
    assert resolved_overflow_fix(auto, ["avx2", "amx_int8"]) == "first_layer"


def test_an_explicit_choice_is_kept_on_every_cpu():
    for fix in ("first_layer", "enable", "disable"):
        for flags in (["avx2"], ["avx512_vnni"]):
            assert resolved_overflow_fix(NncfConfig(overflow_fix=fix), flags) == fix
