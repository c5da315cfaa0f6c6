"""Every architecture exports to ONNX and runs in ONNX Runtime like torch; DCN models run as
standard ``DeformConv`` (opset 19) and build at fp16 and int8; OpenVINO says why it cannot.

Networks are the original topologies at a quarter of the channels (dla_34 also at full
width) and small inputs, with BatchNorm statistics settled on noise and non-zero offset
branches, so that every DeformConv really samples off the grid (and outside the image).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from centernet.classes import class_names_for  # noqa: E402
from centernet.engines import EngineConfig, open_engine  # noqa: E402
from centernet.engines.torch import TorchEngine  # noqa: E402
from centernet.errors import CenterNetError  # noqa: E402
from centernet.export.onnx_graph import ExportConfig, export_onnx  # noqa: E402
from centernet.models import ARCHS, create_model, settle_batchnorm  # noqa: E402
from centernet.models.checkpoint import save_checkpoint  # noqa: E402
from centernet.models.dcn import DCN  # noqa: E402
from centernet.quantize.config import BuildConfig, CalibrationConfig  # noqa: E402
from centernet.quantize.recipe import build  # noqa: E402
from centernet.runtime.detector import Detector  # noqa: E402
from centernet.runtime.images import read_image  # noqa: E402
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into  # noqa: E402
from centernet.types import ModelSpec  # noqa: E402

CLASSES = 3
DCN_ARCHS = ("dla_34", "resdcn_18", "resdcn_34", "resdcn_50", "resdcn_101")


def input_size(arch: str) -> tuple[int, int]:
    return (128, 128) if arch == "hourglass" else (64, 96)  # hourglass: multiples of 128


def make_network(arch: str, width: float = 0.25, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    network = create_model(arch, CLASSES, width=width)
    for module in network.modules():
        if isinstance(module, DCN):  # offsets of a few pixels, masks away from 0.5
            torch.nn.init.normal_(module.conv_offset_mask.weight, std=0.05)
            torch.nn.init.normal_(module.conv_offset_mask.bias, std=1.0)
    return settle_batchnorm(network, input_size(arch))


def export(network, arch: str, path, width: float = 0.25, **config):
    spec = ModelSpec(
        arch,
        CLASSES,
        class_names_for(CLASSES),
        input_size=input_size(arch),
        extra={"arch_args": {"width": width}},
    )
    return export_onnx(network, path, spec, ExportConfig(**config))


def op_types(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def torch_float64(network: torch.nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """The exact answer, up to float64 rounding."""
    exact = copy.deepcopy(network).double()
    with torch.no_grad():
        out = exact(torch.from_numpy(x).double())
    hm = torch.sigmoid(out["hm"])
    hm_max = torch.nn.functional.max_pool2d(hm, 3, stride=1, padding=1)
    return {
        "hm": hm.numpy(),
        "hm_max": hm_max.numpy(),
        "wh": out["wh"].numpy(),
        "reg": out["reg"].numpy(),
    }


def assert_as_exact_as_torch(network, path, spec, x: np.ndarray) -> None:
    """ONNX Runtime is within 1e-4 of float64, or no further than twice torch fp32's error.

    Deep untrained networks accumulate float32 rounding (resdcn_101: torch fp32 is 7e-4 from
    float64, ONNX Runtime 4e-5), so a fixed tolerance against torch fp32 would be either
    loose or flaky; an export error is orders of magnitude larger than either.
    """
    exact = torch_float64(network, x)
    eager = TorchEngine(network, spec)(x)
    got = open_engine(path, "onnxruntime")(x)
    for name in ("hm", "hm_max", "wh", "reg"):
        scale = max(1.0, float(np.abs(exact[name]).max()))
        torch_error = float(np.abs(eager[name] - exact[name]).max()) / scale
        onnx_error = float(np.abs(got[name] - exact[name]).max()) / scale
        assert onnx_error <= max(1e-4, 2 * torch_error), (name, onnx_error, torch_error)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_onnxruntime_matches_torch(arch, tmp_path):
    network = make_network(arch)
    result = export(network, arch, tmp_path / f"{arch}.onnx", dynamic_batch=True)
    dcn = arch in DCN_ARCHS
    assert result.opset == (19 if dcn else 17)
    assert ("DeformConv" in op_types(result.path)) == dcn
    x = np.random.default_rng(1).standard_normal((2, 3, *input_size(arch))).astype(np.float32)
    assert_as_exact_as_torch(network, result.path, result.spec, x)
    assert float(np.std(open_engine(result.path)(x)["hm"])) > 1e-3  # not saturated


def test_full_width_dla_34_matches_torch(tmp_path):
    network = make_network("dla_34", width=1.0)
    result = export(network, "dla_34", tmp_path / "dla_34.onnx", width=1.0)
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 96)).astype(np.float32)
    assert_as_exact_as_torch(network, result.path, result.spec, x)


@pytest.fixture(scope="module")
def dcn_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dcn")
    network = make_network("resdcn_18")
    return network, export(network, "resdcn_18", folder / "fp32.onnx", dynamic_batch=True)


# hm SQNR against fp32 (dB). This random DCN network is chaotic: its offsets move with the
# input, so 1e-3 relative input noise alone costs it 28 dB of hm SQNR (res_18: 62 dB);
# measured fp16 37 dB (DeformConv kept float32), int8 ~14 dB. A wrong DeformConv layout
# or precision bug scores below 10.
@pytest.mark.parametrize(("precision", "min_sqnr_db"), [("fp16", 30.0), ("int8", 10.0)])
def test_dcn_builds_keep_deform_conv_float(
    dcn_model, photo_paths, tmp_path, precision, min_sqnr_db
):
    _, exported = dcn_model
    calibration = CalibrationConfig(str(photo_paths[0].parent), count=2)
    result = build(
        exported.path,
        tmp_path / f"{precision}.onnx",
        BuildConfig(precision, calibration if precision == "int8" else None),
    )
    graph = onnx.load(str(result.path)).graph
    deform = [n for n in graph.node if n.op_type == "DeformConv"]
    assert len(deform) == 3
    if precision == "int8":
        assert result.nodes_quantized > 0
        produced_by = {o: n.op_type for n in graph.node for o in n.output}
        for node in deform:  # float data in, not int8
            assert produced_by.get(node.input[0]) != "QuantizeLinear"
    config = PreprocessConfig(input_size=input_size("resdcn_18"))
    x = np.stack([preprocess_into(read_image(p), config)[0] for p in photo_paths[2:4]])
    want, got = open_engine(exported.path)(x), open_engine(result.path)(x)
    error = got["hm"] - want["hm"]
    sqnr = 10 * np.log10(np.sum(want["hm"] ** 2) / max(np.sum(error**2), 1e-30))
    assert sqnr >= min_sqnr_db


def test_dcn_detections_equal_torch_engine(dcn_model, photo_paths, tmp_path):
    network, exported = dcn_model
    checkpoint = tmp_path / "resdcn.pth"
    save_checkpoint(checkpoint, network, 1, "resdcn_18", {"width": 0.25})
    options = EngineConfig(input_size=input_size("resdcn_18"))
    from_torch = Detector(checkpoint, engine="torch", options=options)(photo_paths[:3])
    from_onnx = Detector(exported.path, engine="onnxruntime")(photo_paths[:3])
    for a, b in zip(from_torch, from_onnx):
        assert len(a) == len(b) == 100
        # Same class, score and box; a random network's heatmap has near-equal neighbour
        # cells, so float rounding may move a few of the 100 local maxima by one cell.
        same = (
            (a.class_ids[:, None] == b.class_ids[None, :])
            & (np.abs(a.scores[:, None] - b.scores[None, :]) <= 1e-4)
            & np.all(np.abs(a.xyxy[:, None, :] - b.xyxy[None, :, :]) <= 1e-2, axis=2)
        )
        assert same.any(axis=1).sum() >= 95 and same.any(axis=0).sum() >= 95
        np.testing.assert_allclose(a.scores[:10], b.scores[:10], atol=1e-4)


def test_openvino_names_deform_conv(dcn_model):
    pytest.importorskip("openvino")
    _, exported = dcn_model
    with pytest.raises(CenterNetError, match=r'DeformConv.*`engine="onnxruntime"`'):
        open_engine(exported.path, "openvino")


def test_cli_on_an_original_dcn_checkpoint(photo_paths, tmp_path, capsys):
    """An original-format resdcn_18 checkpoint: arch inferred, DeformConv export, detect, bench."""
    from centernet.cli import main

    network = create_model("resdcn_18", 80)
    state = {"module." + k: v for k, v in network.state_dict().items()}
    torch.save({"epoch": 70, "state_dict": state}, tmp_path / "ctdet_coco_resdcn18.pth")
    onnx_path = tmp_path / "resdcn18.onnx"
    args = ["export", str(tmp_path / "ctdet_coco_resdcn18.pth"), "-o", str(onnx_path)]
    assert main([*args, "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "resdcn_18" in out and "opset 19" in out and "inferred" in out
    assert "DeformConv" in op_types(onnx_path)
    detect = ["detect", str(onnx_path), str(photo_paths[0]), "--out", str(tmp_path / "det")]
    assert main(detect) == 0
    assert main(["bench", str(onnx_path), "--batches", "1", "--iterations", "2"]) == 0
    assert "resdcn_18" in capsys.readouterr().out


def test_hourglass_input_must_be_a_multiple_of_128(tmp_path):
    network = create_model("hourglass", CLASSES, width=0.125)
    spec = ModelSpec("hourglass", CLASSES, class_names_for(CLASSES), input_size=(96, 128))
    with pytest.raises(CenterNetError, match="multiples of 128"):
        export_onnx(network, tmp_path / "hg.onnx", spec)
    assert not (tmp_path / "hg.onnx").exists()
