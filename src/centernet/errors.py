"""Errors a user can act on: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

import re


class CenterNetError(Exception):
    """Base class for expected failures (bad input, bad model file, missing extra)."""


class CheckpointError(CenterNetError):
    """A checkpoint that cannot be read or does not match the architecture."""


class ModelFileError(CenterNetError):
    """An ONNX file that cannot be loaded or is not a CenterNet export."""


class ImageReadError(CenterNetError):
    """An image that cannot be read; carries the path for the per-file report."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than the limit; refused before decoding."""


class MissingDependencyError(CenterNetError):
    """An optional extra (torch, openvino, pycocotools) is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this needs {package}, which is not installed: pip install 'centernet-deploy[{extra}]'"
        )


#: Parameters whose command-line flag is not the parameter's name with dashes; the CLI
#: adds every option it generates from a settings class (``cli/config_args.py``), under
#: the field's dotted path (``calibration.bins``) and its name.
FLAG_NAMES = {
    "keep_float_layers": "keep-float",
    "calib_images": "calib-images",
    # RayConfig's fields (distributed/): the --ray flags
    "workers": "ray-workers",
    "address": "ray-address",
    "node_ip": "ray-node-ip",
}
_PARAMETER = re.compile(r'`([\w.]+)(?:="([^"`]*)")?`')


def as_command_line(message: str) -> str:
    """A library message as the command line reads it. Library messages name parameters
    as Python does, in backquotes (`` `device="cpu"` ``, `` `max_pixels` ``); the CLI and
    the server show the flag instead (``--device cpu``, ``--max-pixels``)."""

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        text = "--" + FLAG_NAMES.get(name, name.replace("_", "-"))
        return text if value is None else f"{text} {value}"

    return _PARAMETER.sub(flag, message)
