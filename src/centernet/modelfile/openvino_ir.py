"""A CenterNet OpenVINO IR (``model.xml`` + ``model.bin``): the ModelSpec in its runtime info.

The spec is stored as JSON in the IR's ``rt_info`` under ``centernet/spec`` and survives
``save_model`` / ``read_model``. Reading it needs neither OpenVINO nor torch: the IR's
``<rt_info>`` is the last element of the ``.xml``, so only the file's tail is parsed and the
graph and weights are never loaded (engines read the spec at start-up). An IR made by a
plain ``ovc model.onnx`` of our export also opens: the converter copies the ONNX metadata
to ``framework/centernet``, which is read when ``centernet/spec`` is absent.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from centernet.errors import ModelFileError
from centernet.types import ModelSpec

IR_SUFFIX = ".xml"
SPEC_RT_PATH = ("centernet", "spec")  # where write_ir_spec puts the spec
CONVERTED_RT_PATH = ("framework", ModelSpec.METADATA_KEY)  # ONNX metadata, copied by ovc

_TAIL_BYTES = 1 << 16  # the rt_info is a few kB; the tail read grows until it holds it


def is_ir(path: str | Path) -> bool:
    """Whether ``path`` names an OpenVINO IR (by its ``.xml`` suffix)."""
    return Path(path).suffix.lower() == IR_SUFFIX


def write_ir_spec(model: Any, spec: ModelSpec) -> None:
    """Store ``spec`` in an ``openvino.Model``'s runtime info (kept by ``save_model``).

    A stale copy of the fp32 export's spec that conversion put under ``framework`` is
    replaced too, so the IR holds one spec only.
    """
    text = spec.to_json()
    model.set_rt_info(text, list(SPEC_RT_PATH))
    if model.has_rt_info(list(CONVERTED_RT_PATH)):
        model.set_rt_info(text, list(CONVERTED_RT_PATH))


def read_ir_spec(path: str | Path) -> ModelSpec:
    """The ModelSpec of an IR, from the ``<rt_info>`` at the end of its ``.xml``.

    A missing ``.bin`` beside it, a file that is not an IR, or an IR without a spec is a
    one-line ``ModelFileError``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise ModelFileError(
            f"{path}: its weights {weights.name} are missing "
            "(an OpenVINO IR is a .xml and a .bin side by side)"
        )
    rt_info = _model_rt_info(path)
    if rt_info is None:
        raise ModelFileError(f"{path}: not an OpenVINO IR (no <net> with <rt_info> at its end)")
    for keys in (SPEC_RT_PATH, CONVERTED_RT_PATH):
        element = rt_info.find("/".join(keys))
        if element is not None and element.get("value"):
            return ModelSpec.from_json(element.get("value", ""))
    raise ModelFileError(
        f"{path}: not a CenterNet model (no '{'/'.join(SPEC_RT_PATH)}' in its runtime info); "
        "build one with an .xml output"
    )


def _model_rt_info(path: Path) -> ET.Element | None:
    """The model-level ``<rt_info>`` element: the one after ``</edges>``, at the file's end."""
    size = path.stat().st_size
    tail_size = _TAIL_BYTES
    with path.open("rb") as f:
        while True:
            f.seek(max(0, size - tail_size))
            tail = f.read()
            edges_end = tail.rfind(b"</edges>")
            if edges_end >= 0 or tail_size >= size:
                break
            tail_size *= 4
    if edges_end < 0:
        return None
    start = tail.find(b"<rt_info", edges_end)
    end = tail.rfind(b"</rt_info>")
    if start < 0 or end < start:  # none, or an empty <rt_info />
        return ET.Element("rt_info")
    try:
        return ET.fromstring(tail[start : end + len(b"</rt_info>")])
    except ET.ParseError:
        return None
