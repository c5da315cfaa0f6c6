"""Precision builds of an fp32 export: fp32, fp16, int8 and int8-mixed, as a QDQ ``.onnx``
(``ort_qdq.py``, ONNX Runtime's tools) or an OpenVINO IR (``nncf_ir.py``, NNCF), from one
recipe (``recipe.build``) and one set of settings (``config.py``): calibration, the
int8-mixed layer search (``search.py``, scored by ``search_scoring.py``), fine-tuning
(``finetune.py``)."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "BuildConfig": "config",
        "CALIBRATION_METHODS": "config",
        "CalibrationConfig": "config",
        "FinetuneConfig": "config",
        "MIXED_SEARCHES": "config",
        "NncfConfig": "config",
        "PRECISIONS": "config",
        "SearchConfig": "config",
        "BuildResult": "result",
        "ImageCalibrationReader": "calibration",
        "KeptLayer": "float_layers",
        "keep_float": "float_layers",
        "build": "recipe",
        "build_qdq": "qdq",
        "build_openvino": "nncf_ir",
        "prepare_for_quantization": "ort_quantize",
        "SearchResult": "search",
        "output_error": "search_scoring",
    },
)
