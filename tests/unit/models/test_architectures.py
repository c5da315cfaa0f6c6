"""Every registered architecture has the original checkpoint's parameter names, shapes and counts.

Expected counts are computed here from the original definitions (``msra_resnet.py``,
``resnet_dcn.py``, ``pose_dla_dcn.py``, ``large_hourglass.py``) with a tiny layer
arithmetic, independently of our module code; spot-checked names and shapes are written by
hand. Models are built on the meta device, so even Hourglass-104 costs no memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

torch = pytest.importorskip("torch")

from centernet.errors import CheckpointError  # noqa: E402
from centernet.models import ARCHS, create_model  # noqa: E402
from centernet.models.checkpoint import infer_arch, load_checkpoint  # noqa: E402

C = 80  # COCO classes


@dataclass(frozen=True)
class Count:
    """Parameters and state_dict entries of a piece of network."""

    params: int = 0
    entries: int = 0

    def __add__(self, other: Count) -> Count:
        return Count(self.params + other.params, self.entries + other.entries)

    def __mul__(self, n: int) -> Count:
        return Count(self.params * n, self.entries * n)


def conv(i: int, o: int, k: int, bias: bool = False, groups: int = 1) -> Count:
    return Count(i // groups * o * k * k + (o if bias else 0), 2 if bias else 1)


def bn(c: int) -> Count:  # weight, bias; running_mean, running_var, num_batches_tracked
    return Count(2 * c, 5)


def total(*parts: Count) -> Count:
    out = Count()
    for p in parts:
        out = out + p
    return out


def heads(in_ch: int, head_conv: int) -> Count:
    def head(out: int) -> Count:
        return conv(in_ch, head_conv, 3, bias=True) + conv(head_conv, out, 1, bias=True)

    return head(C) + head(2) + head(2)


def dcn(i: int, o: int) -> Count:  # weight, bias, conv_offset_mask (27 = 3 x 3x3 channels)
    return conv(i, o, 3, bias=True) + conv(i, 27, 3, bias=True)


# ----------------------------------------------------------------------------- ResNet


def basic(i: int, planes: int, stride: int) -> Count:
    down = conv(i, planes, 1) + bn(planes) if stride != 1 or i != planes else Count()
    return total(conv(i, planes, 3), bn(planes), conv(planes, planes, 3), bn(planes), down)


def bottleneck(i: int, planes: int, stride: int) -> Count:
    o = planes * 4
    down = conv(i, o, 1) + bn(o) if stride != 1 or i != o else Count()
    return total(
        conv(i, planes, 1),
        bn(planes),
        conv(planes, planes, 3),
        bn(planes),
        conv(planes, o, 1),
        bn(o),
        down,
    )


RESNETS = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}


def resnet_backbone(depth: int) -> tuple[Count, int]:
    kind, blocks = RESNETS[depth]
    block, expansion = (basic, 1) if kind == "basic" else (bottleneck, 4)
    count, inplanes = conv(3, 64, 7) + bn(64), 64
    for stage, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks)):
        for b in range(n):
            count = count + block(inplanes, planes, 2 if stage and b == 0 else 1)
            inplanes = planes * expansion
    return count, inplanes


# torchvision's ImageNet ResNets minus their fc layer (512 or 2048 x 1000 + 1000): an
# outside check of the backbone arithmetic.
TORCHVISION_BACKBONE_PARAMS = {
    18: 11_689_512 - 513_000,
    34: 21_797_672 - 513_000,
    50: 25_557_032 - 2_049_000,
    101: 44_549_160 - 2_049_000,
    152: 60_192_808 - 2_049_000,
}


def res_count(depth: int) -> Count:
    backbone, i = resnet_backbone(depth)
    up = Count()
    for _ in range(3):  # ConvTranspose 4x4 to 256, BN, ReLU
        up = up + conv(i, 256, 4) + bn(256)
        i = 256
    return backbone + up + heads(256, 64)


def resdcn_count(depth: int) -> Count:
    backbone, i = resnet_backbone(depth)
    up = Count()
    for o in (256, 128, 64):  # DCN, BN, ReLU, ConvTranspose 4x4, BN, ReLU
        up = up + dcn(i, o) + bn(o) + conv(o, o, 4) + bn(o)
        i = o
    return backbone + up + heads(64, 64)


# ----------------------------------------------------------------------------- DLA-34


def dla34_base() -> Count:
    def block(i: int, o: int) -> Count:
        return total(conv(i, o, 3), bn(o), conv(o, o, 3), bn(o))

    def root(i: int, o: int) -> Count:
        return conv(i, o, 1) + bn(o)

    def project(i: int, o: int) -> Count:
        return conv(i, o, 1) + bn(o)

    def tree2(i: int, o: int) -> Count:  # levels 2, level_root: root dims 2o and 2o + i + o
        first = block(i, o) + block(o, o) + root(2 * o, o) + project(i, o)
        second = block(o, o) + block(o, o) + root(2 * o + i + o, o)
        return first + second + project(i, o)

    return total(
        conv(3, 16, 7),
        bn(16),
        conv(16, 16, 3),
        bn(16),
        conv(16, 32, 3),
        bn(32),
        block(32, 64) + block(64, 64) + root(128, 64) + project(32, 64),  # level2
        tree2(64, 128),
        tree2(128, 256),  # level3, level4
        block(256, 512) + block(512, 512) + root(2 * 512 + 256, 512) + project(256, 512),
        conv(512, 1000, 1, bias=True),  # ImageNet fc that original checkpoints carry
    )


def dla34_dcn_count() -> Count:
    def block(i: int, o: int) -> Count:  # DeformConv: DCN then BN
        return dcn(i, o) + bn(o)

    def stage(i: int, o: int, f: int) -> Count:  # proj, depthwise up, node
        return block(i, o) + conv(o, o, 2 * f, groups=o) + block(o, o)

    dla_up = total(
        # Each ida brings every deeper (already fused) level up by one octave: the
        # original's ``scales[j + 1:] = scales[j]`` makes all later factors 2.
        stage(512, 256, 2),  # ida_0 over [256, 512] at strides 16, 32
        stage(256, 128, 2) * 2,  # ida_1 over [128, 256, 256] at strides 8, 16, 16
        stage(128, 64, 2) * 3,  # ida_2 over [64, 128, 128, 128] at strides 4, 8, 8, 8
    )
    ida_up = stage(128, 64, 2) + stage(256, 64, 4)
    return dla34_base() + dla_up + ida_up + heads(64, 256)


# ----------------------------------------------------------------------------- Hourglass


def residual(i: int, o: int, stride: int = 1) -> Count:
    skip = conv(i, o, 1) + bn(o) if stride != 1 or i != o else Count()
    return total(conv(i, o, 3), bn(o), conv(o, o, 3), bn(o), skip)


def kp_module(dims: list[int], mods: list[int]) -> Count:
    d0, d1, m0, m1 = dims[0], dims[1], mods[0], mods[1]
    up1 = residual(d0, d0) * m0
    low1 = residual(d0, d1, 2) + residual(d1, d1) * (m0 - 1)
    low2 = kp_module(dims[1:], mods[1:]) if len(dims) > 2 else residual(d1, d1) * m1
    low3 = residual(d1, d1) * (m0 - 1) + residual(d1, d0)
    return up1 + low1 + low2 + low3


def hourglass_count() -> Count:
    dims, mods = [256, 256, 384, 384, 384, 512], [2, 2, 2, 2, 2, 4]
    pre = conv(3, 128, 7) + bn(128) + residual(128, 256, 2)
    per_stack = kp_module(dims, mods) + conv(256, 256, 3) + bn(256)  # kps, cnvs
    between = residual(256, 256) + conv(256, 256, 1) + bn(256) + conv(256, 256, 1) + bn(256)
    stack_heads = heads(256, 256)  # convolution(3, with_bn=False) has a bias, no BN
    return pre + per_stack * 2 + between + stack_heads * 2


EXPECTED = {
    "dlav0_34": Count(18_474_476, 326),  # checked by hand in test_models.py
    "dla_34": dla34_dcn_count(),
    **{f"res_{d}": res_count(d) for d in RESNETS},
    **{f"resdcn_{d}": resdcn_count(d) for d in (18, 34, 50, 101)},
    "hourglass": hourglass_count(),
}

# Hand-written from the original definitions.
SHAPES = {
    "res_18": {
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer4.1.conv2.weight": (512, 512, 3, 3),
        "deconv_layers.0.weight": (512, 256, 4, 4),
        "deconv_layers.3.weight": (256, 256, 4, 4),
        "deconv_layers.7.running_var": (256,),
        "hm.0.weight": (64, 256, 3, 3),
        "hm.2.weight": (C, 64, 1, 1),
        "reg.2.bias": (2,),
    },
    "res_50": {
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer3.5.conv2.weight": (256, 256, 3, 3),
        "deconv_layers.0.weight": (2048, 256, 4, 4),
    },
    "res_152": {"layer2.7.conv1.weight": (128, 512, 1, 1), "layer3.35.bn3.weight": (1024,)},
    "resdcn_18": {
        "deconv_layers.0.weight": (256, 512, 3, 3),
        "deconv_layers.0.bias": (256,),
        "deconv_layers.0.conv_offset_mask.weight": (27, 512, 3, 3),
        "deconv_layers.3.weight": (256, 256, 4, 4),
        "deconv_layers.6.conv_offset_mask.bias": (27,),
        "deconv_layers.9.weight": (128, 128, 4, 4),
        "deconv_layers.16.running_mean": (64,),
        "hm.0.weight": (64, 64, 3, 3),
    },
    "resdcn_101": {"layer3.22.conv3.weight": (1024, 256, 1, 1)},
    "dla_34": {
        "base.fc.weight": (1000, 512, 1, 1),
        "base.level5.root.conv.weight": (512, 1280, 1, 1),
        "dla_up.ida_0.proj_1.conv.weight": (256, 512, 3, 3),
        "dla_up.ida_0.proj_1.conv.conv_offset_mask.weight": (27, 512, 3, 3),
        "dla_up.ida_0.proj_1.actf.0.running_var": (256,),
        "dla_up.ida_0.up_1.weight": (256, 1, 4, 4),
        "dla_up.ida_0.node_1.conv.weight": (256, 256, 3, 3),
        "dla_up.ida_1.proj_2.conv.weight": (128, 256, 3, 3),
        "dla_up.ida_2.up_3.weight": (64, 1, 4, 4),
        "ida_up.proj_2.conv.weight": (64, 256, 3, 3),
        "ida_up.up_2.weight": (64, 1, 8, 8),
        "hm.0.weight": (256, 64, 3, 3),
    },
    "hourglass": {
        "pre.0.conv.weight": (128, 3, 7, 7),
        "pre.1.skip.0.weight": (256, 128, 1, 1),
        "kps.0.up1.0.conv1.weight": (256, 256, 3, 3),
        "kps.0.low1.0.skip.0.weight": (256, 256, 1, 1),
        "kps.0.low2.low1.0.conv1.weight": (384, 256, 3, 3),
        "kps.1.low2.low2.low2.low2.low2.3.conv2.weight": (512, 512, 3, 3),
        "kps.0.low2.low2.low2.low2.low3.1.skip.0.weight": (384, 512, 1, 1),
        "cnvs.1.conv.weight": (256, 256, 3, 3),
        "inters.0.conv1.weight": (256, 256, 3, 3),
        "inters_.0.0.weight": (256, 256, 1, 1),
        "cnvs_.0.1.running_var": (256,),
        "hm.0.0.conv.weight": (256, 256, 3, 3),
        "hm.0.0.conv.bias": (256,),
        "hm.1.1.weight": (C, 256, 1, 1),
        "wh.1.1.bias": (2,),
    },
}
ABSENT = {
    "dla_34": ("dla_up.ida_0.proj_0.conv.weight", "ida_up.up_0.weight", "dla_up.ida_0.node_0"),
    "hourglass": ("hm.0.0.bn.weight", "kps.0.up1.0.skip.0.weight", "inters.1.conv1.weight"),
    "res_18": ("layer1.0.downsample.0.weight", "fc.weight"),
}


def meta_model(arch: str) -> torch.nn.Module:
    with torch.device("meta"):
        return create_model(arch, C)


def test_every_architecture_has_expectations():
    assert set(EXPECTED) == set(ARCHS)


@pytest.mark.parametrize("depth", sorted(RESNETS))
def test_resnet_backbone_arithmetic_matches_torchvision(depth):
    assert resnet_backbone(depth)[0].params == TORCHVISION_BACKBONE_PARAMS[depth]


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_parameter_count_and_entries_match_original(arch):
    model = meta_model(arch)
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == EXPECTED[arch].params
    assert len(state) == EXPECTED[arch].entries
    for name, shape in SHAPES.get(arch, {}).items():
        assert tuple(state[name].shape) == shape, name
    for name in ABSENT.get(arch, ()):
        assert not any(k.startswith(name) for k in state), name


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_arch_inferred_from_keys(arch):
    assert infer_arch(set(meta_model(arch).state_dict())) == arch


def test_inference_needs_a_known_layout():
    keys = set(meta_model("res_18").state_dict())
    assert infer_arch({k for k in keys if not k.startswith("layer4.1.")}) is None
    assert infer_arch({"hm.0.weight", "foo.weight"}) is None


def test_original_checkpoint_loads_with_inferred_arch(tmp_path):
    model = create_model("resdcn_18", 4)
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 70, "state_dict": state}, tmp_path / "resdcn.pth")
    loaded = load_checkpoint(tmp_path / "resdcn.pth")
    assert (loaded.arch, loaded.arch_source, loaded.num_classes) == ("resdcn_18", "inferred", 4)
    with pytest.raises(CheckpointError, match=r"look like resdcn_18"):
        load_checkpoint(tmp_path / "resdcn.pth", "res_18")


@pytest.mark.parametrize(
    ("arch", "height", "width"),
    [("dla_34", 64, 96), ("res_50", 64, 96), ("resdcn_34", 64, 96), ("hourglass", 128, 256)],
)
def test_outputs_at_stride_4(arch, height, width):
    model = create_model(arch, 3, width=0.25).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert list(out) == ["hm", "wh", "reg"]
    assert out["hm"].shape == (2, 3, height // 4, width // 4)
    assert out["reg"].shape == (2, 2, height // 4, width // 4)


def test_hourglass_forward_is_its_last_stack():
    model = create_model("hourglass", 2, width=0.125).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        stacks = model.forward_stacks(x)
        last = model(x)
    assert len(stacks) == 2
    for name in ("hm", "wh", "reg"):
        assert torch.equal(stacks[-1][name], last[name])
    assert not torch.equal(stacks[0]["hm"], stacks[1]["hm"])
