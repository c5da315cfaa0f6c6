"""``build``: one recipe, two back ends. An ONNX QDQ build (``quantize.py``) or, for an
``.xml`` output or ``target="openvino"``, an OpenVINO IR quantized by NNCF
(``quantize_openvino.py``) with the same float layers: the head outputs, the layers asked
for, and for int8-mixed NNCF's accuracy control (or the layers our search picks on the
QDQ graph). This module sits above both back ends, so neither imports the other.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from centernet.build.float_layers import head_output_convs
from centernet.build.quantize import (
    BuildConfig,
    BuildResult,
    _check_search,
    build_qdq,
    search_config,
    search_reason,
)
from centernet.build.quantize_openvino import (
    NncfSettings,
    OpenVinoBuildConfig,
    OpenVinoBuildResult,
    build_openvino,
)
from centernet.build.sensitivity import SearchConfig
from centernet.errors import CenterNetError
from centernet.modelfile.spec import load_centernet_onnx
from centernet.progress import Progress


def build(
    input_path: str | Path,
    output_path: str | Path,
    config: BuildConfig,
    progress: Progress | None = None,
    search: SearchConfig | None = None,
) -> BuildResult | OpenVinoBuildResult:
    """Write ``output_path``: the model of ``input_path`` at ``config.precision``, as a QDQ
    ``.onnx`` or (``.xml``, ``target="openvino"``) an OpenVINO IR. ``progress`` hears each
    stage of an int8 build; ``search`` tunes the int8-mixed layer search."""
    input_path, output_path = Path(input_path), Path(output_path)
    if config.target == "openvino" or output_path.suffix == ".xml":
        return _build_for_openvino(input_path, output_path, config, progress, search)
    return build_qdq(input_path, output_path, config, progress, search)


def _build_for_openvino(
    input_path: Path,
    output_path: Path,
    config: BuildConfig,
    progress: Progress | None,
    search: SearchConfig | None,
):
    """The same recipe as an OpenVINO IR quantized by NNCF: the head outputs float, the
    layers asked for, and for int8-mixed NNCF's accuracy control with the search's score
    (``accuracy_control.py``), or with ``mixed_search="task"`` the layers our search picks
    on the QDQ graph."""
    _check_search(config)
    if config.finetune is not None and config.finetune.steps > 0:
        raise CenterNetError(
            "`qat_steps` makes a QDQ .onnx build (which OpenVINO runs as well): write an .onnx"
        )
    keep: dict[str, str] = {}
    found = None
    control = None
    if config.precision.startswith("int8"):
        model, _ = load_centernet_onnx(input_path)
        if config.head_outputs_float:
            keep.update(dict.fromkeys(head_output_convs(model), "head output (logits)"))
        keep.update(dict.fromkeys(config.keep_float_layers, "asked for (--keep-float)"))
        if config.precision == "int8-mixed" and config.mixed_search in ("auto", "nncf"):
            control = search or search_config(config)
        elif config.precision == "int8-mixed":
            with tempfile.TemporaryDirectory() as tmp:
                trial = replace(config, target="onnx")
                found = build_qdq(input_path, Path(tmp) / "search.onnx", trial, progress, search)
            chosen = found.search.chosen if found.search else []
            keep.update({c.node: search_reason(c) for c in chosen})
    calib = config.calibration
    result = build_openvino(
        input_path,
        output_path,
        OpenVinoBuildConfig(
            precision=config.precision,
            calib_images=calib.images if calib else None,
            calib_count=calib.count if calib else 100,
            keep_float=keep,
            batch=config.batch,
            dynamic_batch=config.dynamic_batch,
            nncf=NncfSettings(bias_correction=config.bias_correction),
            accuracy_control=control,
        ),
        progress,
    )
    if found is not None:
        result.search = found.search
    return result
