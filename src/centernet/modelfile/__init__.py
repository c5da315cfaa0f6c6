"""What a model file says about itself, read and written without torch or OpenVINO: the
ModelSpec in an ONNX file's metadata and in an OpenVINO IR's runtime info, and the I/O names."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "INPUT_NAME": "spec",
        "MAP_OUTPUTS": "spec",
        "TOPK_OUTPUTS": "spec",
        "load_centernet_onnx": "spec",
        "read_file_spec": "spec",
        "read_spec": "spec",
        "write_spec": "spec",
        "is_ir": "openvino_ir",
        "read_ir_spec": "openvino_ir",
        "write_ir_spec": "openvino_ir",
    },
)
