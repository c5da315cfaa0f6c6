"""The dlav0_34 state_dict equals the original DLASeg('dla34') layout; checkpoints load strictly."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from centernet.errors import CheckpointError  # noqa: E402
from centernet.models import create_model  # noqa: E402
from centernet.models.checkpoint import load_checkpoint  # noqa: E402

# Shapes worked out by hand from the original networks/dlav0.py (DLA-34 levels
# [1,1,1,2,2,1], channels [16,32,64,128,256,512]; DLAUp over channels[2:] with scales
# [1,2,4,8]; heads with head_conv 256), not read off our model.
ORIGINAL_SHAPES = {
    "base.base_layer.0.weight": (16, 3, 7, 7),
    "base.level0.0.weight": (16, 16, 3, 3),
    "base.level1.0.weight": (32, 16, 3, 3),
    "base.level2.tree1.conv1.weight": (64, 32, 3, 3),
    "base.level2.project.0.weight": (64, 32, 1, 1),
    "base.level2.root.conv.weight": (64, 128, 1, 1),  # root_dim 2*64, level_root False
    "base.level3.tree1.root.conv.weight": (128, 256, 1, 1),
    "base.level3.tree2.root.conv.weight": (128, 448, 1, 1),  # 2*128 + 64 + 128
    "base.level3.tree1.project.0.weight": (128, 64, 1, 1),
    "base.level4.tree2.root.conv.weight": (256, 896, 1, 1),  # 2*256 + 128 + 256
    "base.level5.root.conv.weight": (512, 1280, 1, 1),  # 2*512 + 256
    "base.level5.root.bn.running_var": (512,),
    "base.level5.root.bn.num_batches_tracked": (),
    "base.fc.weight": (1000, 512, 1, 1),
    "base.fc.bias": (1000,),
    "dla_up.ida_0.proj_1.0.weight": (256, 512, 1, 1),
    "dla_up.ida_0.up_1.weight": (256, 1, 4, 4),
    "dla_up.ida_0.node_1.0.weight": (256, 512, 3, 3),
    "dla_up.ida_1.proj_2.0.weight": (128, 256, 1, 1),
    "dla_up.ida_1.up_2.weight": (128, 1, 4, 4),
    "dla_up.ida_2.proj_3.0.weight": (64, 128, 1, 1),
    "dla_up.ida_2.node_3.0.weight": (64, 128, 3, 3),
    "hm.0.weight": (256, 64, 3, 3),
    "hm.2.weight": (80, 256, 1, 1),
    "hm.2.bias": (80,),
    "wh.2.weight": (2, 256, 1, 1),
    "reg.2.bias": (2,),
}
# Modules that are Identity upstream, so own no entries.
ABSENT = ("dla_up.ida_0.proj_0.0.weight", "dla_up.ida_0.up_0.weight", "dla_up.ida_2.up_0.weight")


@pytest.fixture(scope="module")
def full_model():
    return create_model("dlav0_34", 80)


def test_state_dict_matches_original_layout(full_model):
    state = full_model.state_dict()
    assert len(state) == 326
    assert sum(p.numel() for p in full_model.parameters()) == 18_474_476
    for name, shape in ORIGINAL_SHAPES.items():
        assert tuple(state[name].shape) == shape, name
    for name in ABSENT:
        assert name not in state
    # Every BatchNorm carries the five entries an original checkpoint has.
    bn_weights = [k for k in state if k.endswith(".running_mean")]
    for key in bn_weights:
        stem = key[: -len("running_mean")]
        assert {stem + s for s in ("weight", "bias", "running_var", "num_batches_tracked")} <= set(
            state
        )


def test_flops_at_512(full_model):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        full_model.eval()(torch.zeros(1, 3, 512, 512))
    assert counter.get_total_flops() / 1e9 == pytest.approx(62.2, abs=0.05)


def test_outputs_at_stride_4(full_model):
    with torch.no_grad():
        out = full_model.eval()(torch.zeros(1, 3, 96, 160))
    assert list(out) == ["hm", "wh", "reg"]
    assert out["hm"].shape == (1, 80, 24, 40) and out["wh"].shape == (1, 2, 24, 40)


@pytest.mark.parametrize("wrap", ["original", "bare"])
@pytest.mark.parametrize("prefix", ["module.", ""])
def test_loads_original_format_strictly(full_model, tmp_path, wrap, prefix):
    state = {prefix + k: v.clone() for k, v in full_model.state_dict().items()}
    state[prefix + "hm.2.bias"].fill_(-1.5)
    path = tmp_path / "model.pth"
    torch.save({"epoch": 140, "state_dict": state} if wrap == "original" else state, path)
    loaded = load_checkpoint(path)
    assert loaded.arch == "dlav0_34" and loaded.num_classes == 80
    assert torch.equal(loaded.model.state_dict()["hm.2.bias"], torch.full((80,), -1.5))
    assert not loaded.model.training


def test_num_classes_taken_from_hm_head(tmp_path):
    model = create_model("dlav0_34", 3)
    torch.save({"epoch": 1, "state_dict": model.state_dict()}, tmp_path / "m.pth")
    assert load_checkpoint(tmp_path / "m.pth").num_classes == 3


def test_resnet_checkpoint_is_named_as_such(tmp_path):
    state = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3),
        "deconv_layers.0.weight": torch.zeros(512, 256, 4, 4),
        "hm.0.weight": torch.zeros(64, 64, 3, 3),
        "hm.2.weight": torch.zeros(80, 64, 1, 1),
    }
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "res.pth")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "res.pth", "dlav0_34")
    message = str(info.value)
    assert "missing" in message and "unexpected" in message and "mis-shaped" in message
    assert "ResNet" in message and "layer1.0.conv1.weight" in message
    assert "\n" not in message


def test_misshaped_key_is_named(full_model, tmp_path):
    state = dict(full_model.state_dict())
    state["hm.0.weight"] = torch.zeros(128, 64, 3, 3)
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match=r"1 mis-shaped \(hm.0.weight \(128, 64, 3, 3\)"):
        load_checkpoint(tmp_path / "m.pth")


class NotATensor:  # a pickled object of any class must be refused, not executed
    pass


@pytest.mark.parametrize(
    "writer",
    [
        lambda p: p.write_text("hello, I am not a checkpoint"),
        lambda p: p.write_bytes(b""),
        lambda p: torch.save({"state_dict": {"x": NotATensor()}}, p),
        lambda p: torch.save([1, 2, 3], p),
    ],
    ids=["text", "empty", "pickled-object", "list"],
)
def test_non_checkpoints_are_one_clear_error(tmp_path, writer):
    path = tmp_path / "bad.pth"
    writer(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
