"""Making model files: export a checkpoint to ONNX, and rebuild it at fp16, int8 or
int8-mixed (ONNX QDQ or an NNCF OpenVINO IR) with calibration and the float-layer search."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "ExportConfig": "export",
        "ExportResult": "export",
        "VerifyConfig": "export",
        "export_onnx": "export",
        "ImageCalibrationReader": "calibration",
        "BuildConfig": "quantize",
        "BuildResult": "quantize",
        "CALIBRATION_METHODS": "quantize",
        "CalibrationConfig": "quantize",
        "KeptLayer": "float_layers",
        "keep_float": "float_layers",
        "FinetuneConfig": "finetune",
        "PRECISIONS": "quantize",
        "build": "recipe",
        "build_qdq": "quantize",
        "NncfSettings": "quantize_openvino",
        "OpenVinoBuildConfig": "quantize_openvino",
        "build_openvino": "quantize_openvino",
        "SearchConfig": "sensitivity",
        "output_error": "sensitivity",
        "prepare_for_quantization": "quantize",
        "SearchResult": "sensitivity",
    },
)
