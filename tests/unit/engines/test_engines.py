"""Engine selection and options: clear messages for what is not installed or not known."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from centernet.engines import open_engine
from centernet.engines.onnxruntime import graph_optimization_level, providers_for
from centernet.errors import CenterNetError


def test_cpu_providers():
    assert providers_for("cpu") == ["CPUExecutionProvider"]


def test_cuda_without_cuda_provider_is_a_clear_error():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has onnxruntime-gpu")
    with pytest.raises(CenterNetError, match="install onnxruntime-gpu"):
        providers_for("cuda")


def test_graph_optimisation_levels():
    assert graph_optimization_level("basic") == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with pytest.raises(CenterNetError, match="unknown graph optimisation level"):
        graph_optimization_level("max")


def test_unknown_engine_and_missing_file(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(CenterNetError, match="unknown engine 'tensorflow'"):
        open_engine(tmp_path / "m.onnx", "tensorflow")
    with pytest.raises(CenterNetError, match="no such model file"):
        open_engine(tmp_path / "missing.onnx")


def _spec_only_onnx(path, arch: str):
    """A minimal ONNX file carrying a ModelSpec: what auto_engine reads to choose."""
    import onnx
    from onnx import TensorProto, helper

    from centernet.modelfile.spec import write_spec
    from centernet.types import ModelSpec

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("hm", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["hm"])], "g", [x], [y])
    model = helper.make_model(graph)
    write_spec(model, ModelSpec(arch=arch, num_classes=1, class_names=["a"]))
    onnx.save(model, str(path))
    return path


def test_auto_picks_the_fastest_installed_engine_for_the_file(tmp_path, monkeypatch):
    """The rule measured in BENCHMARKS.md ("Engine choice"): OpenVINO for an ONNX file on
    an x86-64 CPU when installed, except DCN models; ONNX Runtime otherwise and on CUDA."""
    from centernet import engines
    from centernet.engines import EngineConfig, auto_engine

    plain = _spec_only_onnx(tmp_path / "dlav0.onnx", "dlav0_34")
    dcn = _spec_only_onnx(tmp_path / "dla.onnx", "dla_34")
    resdcn = _spec_only_onnx(tmp_path / "resdcn.onnx", "resdcn_18")
    ir = tmp_path / "model.xml"
    ir.write_text("<net/>")
    monkeypatch.setattr(engines, "openvino_installed", lambda: True)
    monkeypatch.setattr(engines, "_x86_64", lambda: True)
    assert auto_engine(plain) == "openvino"
    assert auto_engine(dcn) == auto_engine(resdcn) == "onnxruntime"  # DeformConv
    assert auto_engine(plain, EngineConfig(device="cuda")) == "onnxruntime"
    assert auto_engine(tmp_path / "model.pth") == "torch"
    assert auto_engine(ir) == "openvino"
    monkeypatch.setattr(engines, "_x86_64", lambda: False)  # e.g. aarch64
    assert auto_engine(plain) == "onnxruntime"
    monkeypatch.setattr(engines, "_x86_64", lambda: True)
    monkeypatch.setattr(engines, "openvino_installed", lambda: False)  # skipped by auto
    assert auto_engine(plain) == "onnxruntime"


def test_an_engine_asked_for_by_name_but_not_installed_gives_its_install_line(
    tmp_path, monkeypatch
):
    import sys

    from centernet.errors import MissingDependencyError

    plain = _spec_only_onnx(tmp_path / "dlav0.onnx", "dlav0_34")
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now fails
    with pytest.raises(MissingDependencyError, match=r"pip install .*\[openvino\]"):
        open_engine(plain, "openvino")
    assert open_engine(plain, "auto").name == "onnxruntime"  # auto skips it


def test_the_registry_is_the_list_and_the_dispatch():
    from centernet.cli.parser import build_parser
    from centernet.engines import ENGINE_REGISTRY, ENGINES, EngineConfig

    assert ("auto", *ENGINE_REGISTRY) == ENGINES
    fields_ = set(EngineConfig.__dataclass_fields__)
    for name, entry in ENGINE_REGISTRY.items():
        assert entry.options <= fields_, name  # only real fields
        module = __import__(f"centernet.engines.{entry.module}", fromlist=["x"])
        factory = module
        for part in entry.factory.split("."):
            factory = getattr(factory, part)
        assert callable(factory) and getattr(module, entry.factory.split(".")[0]).name == name
    detect = next(a for a in build_parser()._actions if a.dest == "command").choices["detect"]
    engine = next(a for a in detect._actions if a.dest == "engine")
    assert tuple(engine.choices) == ENGINES


@pytest.mark.parametrize(
    ("engine", "options", "named"),
    [
        ("onnxruntime", {"capture": "graph"}, "`capture`"),
        ("onnxruntime", {"cache_dir": "/tmp/x"}, "`cache_dir`"),
        ("openvino", {"graph_optimization": "basic"}, "`graph_optimization`"),
        ("openvino", {"channels_last": True}, "`channels_last`"),
        ("onnxruntime", {"arch": "dlav0_34"}, "`arch`"),
    ],
)
def test_an_option_the_engine_does_not_read_is_refused(tmp_path, engine, options, named):
    from centernet.engines import EngineConfig, check_engine_options, options_for

    config = EngineConfig(**options)
    with pytest.raises(CenterNetError, match=f"{named} is not an option of the {engine} engine"):
        check_engine_options(engine, config)
    check_engine_options(engine, options_for(engine, config))  # said out loud: dropped
    (tmp_path / "m.onnx").write_bytes(b"x")  # refused before the file is even read
    with pytest.raises(CenterNetError, match=named):
        open_engine(tmp_path / "m.onnx", engine, config)


def test_options_an_engine_reads_pass():
    from centernet.engines import ENGINE_REGISTRY, EngineConfig, check_engine_options

    check_engine_options("onnxruntime", EngineConfig(threads=2, graph_optimization="basic"))
    check_engine_options("openvino", EngineConfig(threads=1, cache_dir="/tmp/c"))
    check_engine_options("torch", EngineConfig(capture="eager", channels_last=False))
    assert all("threads" in e.options and "precision" in e.options
               for e in ENGINE_REGISTRY.values())  # fmt: skip
