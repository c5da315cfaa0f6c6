"""Export: ONNX Runtime against torch on the same weights; graph shape, names and metadata."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from centernet.engines import open_engine  # noqa: E402
from centernet.errors import ModelFileError  # noqa: E402
from centernet.export.onnx_graph import ExportConfig, export_onnx  # noqa: E402
from centernet.modelfile.spec import MAP_OUTPUTS  # noqa: E402
from centernet.models import create_model, settle_batchnorm  # noqa: E402
from centernet.models.deploy import DeployModel  # noqa: E402
from centernet.types import ModelSpec  # noqa: E402
from tests.helpers import TINY_CLASSES, TINY_SIZE  # noqa: E402


def test_full_size_dlav0_matches_torch(tmp_path):
    torch.manual_seed(1)
    network = settle_batchnorm(create_model("dlav0_34", 80), (256, 256))
    spec = ModelSpec("dlav0_34", 80, [f"c{i}" for i in range(80)], input_size=(256, 256))
    result = export_onnx(network, tmp_path / "full.onnx", spec)
    assert result.check is not None and result.check.vs_torch["hm"] < 1e-4
    # An independent run on a fresh input: ORT against torch eager with sigmoid + max-pool.
    x = torch.randn(1, 3, 256, 256)
    session = ort.InferenceSession(str(tmp_path / "full.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip(MAP_OUTPUTS, session.run(list(MAP_OUTPUTS), {"input": x.numpy()})))
    with torch.no_grad():
        raw = network(x)
    hm = torch.sigmoid(raw["hm"])
    assert np.max(np.abs(got["hm"] - hm.numpy())) < 1e-4
    assert (
        np.max(np.abs(got["hm_max"] - torch.nn.functional.max_pool2d(hm, 3, 1, 1).numpy())) < 1e-4
    )
    assert np.allclose(got["wh"], raw["wh"].numpy(), rtol=1e-3, atol=1e-4)
    assert np.allclose(got["reg"], raw["reg"].numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("dynamic", [False, True])
def test_graph_io_and_spec(tiny_network, tmp_path, dynamic):
    spec = ModelSpec("dlav0_34", 3, TINY_CLASSES, input_size=TINY_SIZE)
    config = ExportConfig(batch=3, dynamic_batch=dynamic)
    export_onnx(tiny_network, tmp_path / "m.onnx", spec, config)
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert model.opset_import[0].version >= 17
    assert [o.name for o in model.graph.output] == list(MAP_OUTPUTS)
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert (batch_dim.dim_param == "batch") if dynamic else (batch_dim.dim_value == 3)
    engine = open_engine(tmp_path / "m.onnx")
    assert engine.spec.class_names == TINY_CLASSES
    assert engine.spec.batch == ("dynamic" if dynamic else 3)
    assert engine.batch_size == (None if dynamic else 3)
    outputs = engine(np.zeros((3, 3, *TINY_SIZE), np.float32))
    assert outputs["hm"].shape == (3, 3, TINY_SIZE[0] // 4, TINY_SIZE[1] // 4)


def test_deploy_model_is_sigmoid_and_pool(tiny_network):
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        hm_max, hm, wh, reg = DeployModel(tiny_network)(x)
        raw = tiny_network(x)
    assert torch.equal(hm, torch.sigmoid(raw["hm"]))
    # max-pool by hand: the max of each 3x3 neighbourhood
    padded = torch.nn.functional.pad(hm, (1, 1, 1, 1), value=-1.0)
    windows = padded.unfold(2, 3, 1).unfold(3, 3, 1)
    assert torch.equal(hm_max, windows.amax(dim=(-1, -2)))


def test_onnx_that_is_not_centernet_is_one_clear_error(tmp_path):
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "relu.onnx"))
    with pytest.raises(ModelFileError, match="not a CenterNet export"):
        open_engine(tmp_path / "relu.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="cannot load as an ONNX model"):
        open_engine(tmp_path / "junk.onnx")


@pytest.mark.parametrize("dynamic_size", [False, True])
def test_topk_in_graph_gives_the_same_detections(tiny_network, tmp_path, photo_paths, dynamic_size):
    from centernet.runtime.detector import Detector
    from tests.helpers import assert_detections_close, export_tiny

    maps = export_tiny(
        tiny_network, tmp_path / "maps.onnx", dynamic_batch=True, dynamic_size=dynamic_size
    )
    topk = export_tiny(
        tiny_network,
        tmp_path / "topk.onnx",
        dynamic_batch=True,
        dynamic_size=dynamic_size,
        output_mode="topk",
    )
    assert [o.name for o in onnx.load(str(topk)).graph.output] == ["boxes", "scores", "classes"]
    a, b = Detector(maps, batch_size=3), Detector(topk, batch_size=3)
    assert b.spec.output_mode == "topk"
    for x, y in zip(a(photo_paths), b(photo_paths)):
        assert_detections_close(x, y, atol=1e-4, score_atol=1e-6)
    cut = float(np.median(a(photo_paths[0]).scores))
    x = Detector(maps, threshold=cut)(photo_paths[0])
    y = Detector(topk, threshold=cut)(photo_paths[0])
    assert len(x) == len(y) and np.allclose(x.xyxy, y.xyxy, atol=1e-4)
    if dynamic_size:
        kx = Detector(maps, keep_res=True)(photo_paths[1])
        ky = Detector(topk, keep_res=True)(photo_paths[1])
        assert_detections_close(kx, ky, atol=1e-4, score_atol=1e-6)


def _scale_one_conv_weight(source, target, factor: float) -> None:
    """A broken export: one convolution in the middle of the graph with scaled weights."""
    model = onnx.load(str(source))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    name = convs[len(convs) // 2].input[1]
    for init in model.graph.initializer:
        if init.name == name:
            scaled = onnx.numpy_helper.to_array(init) * factor
            init.CopyFrom(onnx.numpy_helper.from_array(scaled.astype(np.float32), name))
    onnx.save(model, str(target))


def test_export_check_fails_a_broken_graph_and_gives_the_numbers(tiny_network, tmp_path):
    from centernet.export.onnx_graph import VerifyConfig, verify_against_torch

    good = tmp_path / "good.onnx"
    export_onnx(tiny_network, good, ModelSpec("dlav0_34", 3, TINY_CLASSES, input_size=TINY_SIZE))
    _scale_one_conv_weight(good, tmp_path / "bad.onnx", 1.02)  # a 2 % error in one layer
    deploy = DeployModel(tiny_network).eval()
    x = torch.randn(1, 3, *TINY_SIZE, generator=torch.Generator().manual_seed(0))
    bad = verify_against_torch(deploy, tmp_path / "bad.onnx", x)
    assert not bad.passed
    assert bad.onnx_error is not None and bad.torch_error is not None  # judged against float64
    assert max(bad.onnx_error.values()) > 100 * max(bad.torch_error.values())
    assert "float64 reference" in bad.failure and "e-0" in bad.failure
    # the correct export passes even when made to take the float64 path
    forced = verify_against_torch(deploy, good, x, config=VerifyConfig(tolerance=1e-12))
    assert forced.passed and forced.onnx_error is not None


def test_export_raises_with_the_numbers_when_the_check_fails(tiny_network, tmp_path, monkeypatch):
    """export_onnx itself refuses a graph that disagrees (here: torch is the one corrupted)."""
    import copy

    from centernet.errors import CenterNetError

    broken = copy.deepcopy(tiny_network)
    real_onnx_export = torch.onnx.export

    def export_other_weights(model, *args, **kwargs):  # ONNX written from different weights
        with torch.no_grad():
            shifted = copy.deepcopy(model)
            for p in shifted.parameters():
                p.mul_(1.02)
        return real_onnx_export(shifted, *args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export_other_weights)
    spec = ModelSpec("dlav0_34", 3, TINY_CLASSES, input_size=TINY_SIZE)
    with pytest.raises(CenterNetError, match=r"disagrees with torch: max \|\w+\| error against"):
        export_onnx(broken, tmp_path / "m.onnx", spec)
