"""centernet-deploy: CenterNet from a PyTorch checkpoint to a fast, quantized inference model.

The packages follow the data flow: ``build`` makes model files (export, int8), ``modelfile``
reads what a file says about itself, ``engines`` run one, ``runtime`` turns images into
boxes (the Detector), ``measure`` scores and times, and the fronts (``cli``, ``serve``,
``distributed``, ``demo``) call them. The names most users need are importable from here.
"""

from centernet._lazy import lazy_exports
from centernet.version import __version__

__getattr__, __dir__, _names = lazy_exports(
    __name__,
    {
        "Detector": "runtime.detector",
        "DetectorSettings": "runtime.detector",
        "DetectionResult": "runtime.stages",
        "Detections": "types",
        "Letterbox": "types",
        "ModelSpec": "types",
        "CenterNetError": "errors",
    },
)
__all__ = [*_names, "__version__"]
