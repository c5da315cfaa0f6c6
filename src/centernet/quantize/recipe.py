"""``build``: one recipe, two kinds of file, chosen by the output's suffix. A QDQ ``.onnx``
(``qdq.py``: ONNX Runtime's placement, which both engines run as int8), or an ``.xml``,
an OpenVINO IR quantized by NNCF (``nncf_ir.py``: the fast file for OpenVINO) with the
same float layers: the head outputs, the layers asked for, and for int8-mixed NNCF's
accuracy control (or the layers our search picks on the QDQ graph).
Every setting is checked against what the chosen precision and target use before
anything is read or written (``config.check_build_config``). This module sits above the
back ends, so none imports another.
"""

from __future__ import annotations

from pathlib import Path

from centernet.errors import CenterNetError
from centernet.modelfile.spec import load_centernet_onnx
from centernet.progress import Progress
from centernet.quantize.config import (
    BuildConfig,
    check_build_config,
    resolve_target,
)
from centernet.quantize.float_layers import head_output_convs
from centernet.quantize.nncf_ir import build_openvino
from centernet.quantize.qdq import build_qdq
from centernet.quantize.result import BuildResult


def build(
    input_path: str | Path,
    output_path: str | Path,
    config: BuildConfig,
    progress: Progress | None = None,
) -> BuildResult:
    """Write ``output_path``: the model of ``input_path`` at ``config.precision``, as a QDQ
    ``.onnx`` or (an ``.xml``) an OpenVINO IR. ``progress`` hears each stage of an int8
    build."""
    input_path, output_path = Path(input_path), Path(output_path)
    target = resolve_target(output_path)
    check_build_config(config, target)
    if output_path.resolve() == input_path.resolve():
        raise CenterNetError(
            f"refusing to overwrite the input model {input_path}; choose another -o"
        )
    annotations = config.search.annotations
    if annotations is not None and not Path(annotations).is_file():
        raise CenterNetError(f"calibration annotations {annotations} do not exist")
    if target.ir:
        return _build_ir(input_path, output_path, config, progress)
    return build_qdq(input_path, output_path, config, progress)


def _build_ir(
    input_path: Path, output_path: Path, config: BuildConfig, progress: Progress | None
) -> BuildResult:
    """The same recipe as an OpenVINO IR quantized by NNCF: the head outputs float and the
    layers asked for; int8-mixed's search runs on the quantized IR itself (or NNCF's
    accuracy control does, asked for)."""
    keep: dict[str, str] = {}
    if config.precision.startswith("int8"):
        model, _ = load_centernet_onnx(input_path)
        if config.head_outputs_float:
            keep.update(dict.fromkeys(head_output_convs(model), "head output (logits)"))
        keep.update(dict.fromkeys(config.keep_float_layers, "asked for (--keep-float)"))
    return build_openvino(input_path, output_path, config, keep, progress)
