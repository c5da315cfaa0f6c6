"""The ModelSpec of a model file, read by skipping its graph, equals onnx's full parse."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from centernet.errors import ModelFileError
from centernet.modelfile.spec import load_centernet_onnx, read_file_spec, write_spec
from centernet.types import ModelSpec


def _model(with_spec: bool, other_props: int = 2) -> onnx.ModelProto:
    weights = numpy_helper.from_array(np.arange(300_000, dtype=np.float32), "w")  # 1.2 MB
    graph = helper.make_graph(
        [helper.make_node("Add", ["input", "w"], ["out"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [300_000])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [300_000])],
        [weights],
    )
    model = helper.make_model(graph)
    for i in range(other_props):  # other tools' metadata, before and after ours
        helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                       f"tool{i}": "x" * 200})  # fmt: skip
    if with_spec:
        write_spec(model, ModelSpec("dlav0_34", 2, ["cat", "dög ✓"], batch="dynamic"))
        model.metadata_props.add(key="after", value="y")
    return model


def test_skipping_the_graph_reads_the_same_spec(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(True), str(path))
    assert read_file_spec(path) == load_centernet_onnx(path)[1]
    assert read_file_spec(path).class_names == ["cat", "dög ✓"]


@pytest.mark.parametrize("damage", ["no_spec", "garbage", "truncated", "empty"])
def test_what_it_cannot_read_gets_onnx_s_precise_error(tmp_path, damage):
    path = tmp_path / "m.onnx"
    onnx.save(_model(damage != "no_spec"), str(path))
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x0f\xff" * 1000)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    expected = "not a CenterNet export" if damage in ("no_spec", "empty") else "cannot load"
    with pytest.raises(ModelFileError, match=expected):
        read_file_spec(path)
