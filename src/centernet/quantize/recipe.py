"""``build``: one recipe, two back ends. A QDQ ``.onnx`` (``qdq.py``) or, for an ``.xml``
output or ``target="openvino"``, an OpenVINO IR quantized by NNCF (``nncf_build.py``)
with the same float layers: the head outputs, the layers asked for, and for int8-mixed
NNCF's accuracy control (or the layers our search picks on the QDQ graph). Every setting
is checked against what the chosen precision and back end use before anything is read
or written (``config.check_build_config``). This module sits above both back ends, so
neither imports the other.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from centernet.errors import CenterNetError
from centernet.modelfile.spec import load_centernet_onnx
from centernet.progress import Progress
from centernet.quantize.config import BuildConfig, check_build_config
from centernet.quantize.float_layers import head_output_convs
from centernet.quantize.nncf_build import build_openvino
from centernet.quantize.qdq import build_qdq
from centernet.quantize.result import BuildResult
from centernet.quantize.search import search_reason


def build(
    input_path: str | Path,
    output_path: str | Path,
    config: BuildConfig,
    progress: Progress | None = None,
) -> BuildResult:
    """Write ``output_path``: the model of ``input_path`` at ``config.precision``, as a QDQ
    ``.onnx`` or (``.xml``, ``target="openvino"``) an OpenVINO IR. ``progress`` hears each
    stage of an int8 build."""
    input_path, output_path = Path(input_path), Path(output_path)
    target = config.target_for(output_path)
    check_build_config(config, target)
    if output_path.resolve() == input_path.resolve():
        raise CenterNetError(
            f"refusing to overwrite the input model {input_path}; choose another -o"
        )
    annotations = config.search.annotations
    if annotations is not None and not Path(annotations).is_file():
        raise CenterNetError(f"calibration annotations {annotations} do not exist")
    if target == "openvino":
        return _build_for_openvino(input_path, output_path, config, progress)
    return build_qdq(input_path, output_path, replace(config, target="onnx"), progress)


def _build_for_openvino(
    input_path: Path, output_path: Path, config: BuildConfig, progress: Progress | None
) -> BuildResult:
    """The same recipe as an OpenVINO IR quantized by NNCF: the head outputs float, the
    layers asked for, and for int8-mixed NNCF's accuracy control with the search's score
    (``accuracy_control.py``), or with the task search the layers it picks on the QDQ
    graph."""
    keep: dict[str, str] = {}
    found = None
    control = None
    if config.precision.startswith("int8"):
        model, _ = load_centernet_onnx(input_path)
        if config.head_outputs_float:
            keep.update(dict.fromkeys(head_output_convs(model), "head output (logits)"))
        keep.update(dict.fromkeys(config.keep_float_layers, "asked for (--keep-float)"))
        method = config.search_method("openvino")
        if config.precision == "int8-mixed" and method == "nncf":
            control = config.search
        elif config.precision == "int8-mixed":
            with tempfile.TemporaryDirectory() as tmp:
                trial = replace(config, target="onnx", nncf=type(config.nncf)())
                found = build_qdq(input_path, Path(tmp) / "search.onnx", trial, progress)
            chosen = found.search.chosen if found.search else []
            keep.update({c.node: search_reason(c) for c in chosen})
    result = build_openvino(
        input_path, output_path, replace(config, target="openvino"), keep, control, progress
    )
    if found is not None:
        result.search = found.search
    return result
