"""A CenterNet ONNX file: its input/output names and the ModelSpec in its metadata.
(``read_file_spec`` also reads an OpenVINO IR's, through ``openvino_ir.py``.)

Torch-free on purpose: the ONNX Runtime and OpenVINO engines and ``centernet build`` read
model files without importing torch (``export.py``, which writes them, needs it). Engines
read the ModelSpec with ``read_file_spec``, which skips the weights instead of parsing
them, so that start-up does not pay for a full ``onnx.load``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from centernet.errors import ModelFileError
from centernet.modelfile.openvino_ir import is_ir, read_ir_spec
from centernet.types import ModelSpec

if TYPE_CHECKING:
    import onnx

_METADATA_PROPS = 14  # ModelProto.metadata_props (repeated StringStringEntryProto)

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
    import onnx

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


def read_file_spec(path: str | Path) -> ModelSpec:
    """The ModelSpec of a model file (ONNX, or an OpenVINO IR ``.xml``), read without
    parsing its graph.

    Engines call this at start-up: it seeks past the weights (tens of MB) instead of
    parsing them, and needs no ``onnx`` import. Anything it cannot read goes through
    ``load_centernet_onnx``, which gives the precise error.
    """
    path = Path(path)
    if is_ir(path):
        return read_ir_spec(path)
    try:
        with path.open("rb") as f:
            props = _metadata_props(f, path.stat().st_size)
    except (OSError, ValueError):
        return load_centernet_onnx(path)[1]
    if ModelSpec.METADATA_KEY not in props:
        return load_centernet_onnx(path)[1]
    return ModelSpec.from_json(props[ModelSpec.METADATA_KEY])


def _metadata_props(f: BinaryIO, size: int) -> dict[str, str]:
    """key -> value of a serialized ModelProto's metadata_props, walking its top-level
    protobuf fields and skipping the others (the graph) by their length."""
    props = {}
    for entry in _length_delimited(f, size, {_METADATA_PROPS})[_METADATA_PROPS]:
        fields = _length_delimited(io.BytesIO(entry), len(entry), {1, 2})  # key, value
        key, value = (fields[n][-1] if fields[n] else b"" for n in (1, 2))
        props[key.decode("utf-8")] = value.decode("utf-8")
    return props


def _length_delimited(f: BinaryIO, end: int, wanted: set[int]) -> dict[int, list[bytes]]:
    """Payloads of the length-delimited fields numbered in ``wanted``, from here to ``end``;
    every other field is skipped by its length, unread."""
    found: dict[int, list[bytes]] = {number: [] for number in wanted}
    while f.tell() < end:
        number, wire = divmod(_varint(f), 8)
        if wire == 0:
            _varint(f)
        elif wire in (1, 5):
            f.seek(8 if wire == 1 else 4, 1)
        elif wire == 2:
            length = _varint(f)
            if f.tell() + length > end:
                raise ValueError("a field runs past the end")
            if number in wanted:
                found[number].append(f.read(length))
            else:
                f.seek(length, 1)
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
    return found


def _varint(f: BinaryIO) -> int:
    value, shift = 0, 0
    while True:
        byte = f.read(1)
        if not byte:
            raise ValueError("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
