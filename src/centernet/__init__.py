"""centernet-deploy: CenterNet from a PyTorch checkpoint to a fast, quantized inference model.

The packages follow the data flow: ``build`` makes model files (export, int8), ``modelfile``
reads what a file says about itself, ``engines`` run one, ``runtime`` turns images into
boxes (the Detector), ``measure`` scores and times, and the fronts (``cli``, ``serve``,
``distributed``, ``video``, ``demo``) call them. The names most users need are importable
from here, lazily: ``import centernet`` imports nothing else.
"""

__version__ = "0.1.0"

# name -> the module that defines it (imported on first use; _lazy.py's rule, written out
# here so that importing the package costs no more than this file)
_EXPORTS = {
    "Detector": "runtime.detector",
    "DetectorConfig": "runtime.detector",
    "DetectorSettings": "runtime.detector",  # the name before 0.2: DetectorConfig
    "DetectionResult": "runtime.stages",
    "Detections": "types",
    "Letterbox": "types",
    "ModelSpec": "types",
    "CenterNetError": "errors",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'centernet' has no attribute {name!r}")
    return getattr(__import__(f"centernet.{module}", fromlist=[name]), name)


def __dir__() -> list[str]:
    return __all__
