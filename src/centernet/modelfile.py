"""A CenterNet ONNX file: its input/output names and the ModelSpec in its metadata.

Torch-free on purpose: the ONNX Runtime and OpenVINO engines and ``centernet build`` read
model files without importing torch (``export.py``, which writes them, needs it).
"""

from __future__ import annotations

from pathlib import Path

import onnx

from centernet.errors import ModelFileError
from centernet.types import ModelSpec

INPUT_NAME = "input"
MAP_OUTPUTS = ("hm_max", "hm", "wh", "reg")
TOPK_OUTPUTS = ("boxes", "scores", "classes")


def write_spec(model: onnx.ModelProto, spec: ModelSpec) -> None:
    """Store ``spec`` as JSON under metadata key ``centernet`` (replacing an old one)."""
    kept = [p for p in model.metadata_props if p.key != ModelSpec.METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = ModelSpec.METADATA_KEY
    entry.value = spec.to_json()


def read_spec(model: onnx.ModelProto) -> ModelSpec | None:
    for prop in model.metadata_props:
        if prop.key == ModelSpec.METADATA_KEY:
            return ModelSpec.from_json(prop.value)
    return None


def load_centernet_onnx(path: str | Path) -> tuple[onnx.ModelProto, ModelSpec]:
    """An exported model and its ModelSpec; a clear ModelFileError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelFileError(
            f"{path}: cannot load as an ONNX model ({type(exc).__name__})"
        ) from None
    spec = read_spec(model)
    if spec is None:
        raise ModelFileError(
            f"{path}: not a CenterNet export (no '{ModelSpec.METADATA_KEY}' metadata); "
            "make one with `centernet export`"
        )
    return model, spec
