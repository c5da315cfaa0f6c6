"""Export: a PyTorch network (from a checkpoint) -> a verified, self-describing ONNX file
(the network + sigmoid + heatmap max-pool, its ModelSpec in the metadata, checked against
torch and float64)."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "ExportConfig": "onnx_graph",
        "ExportResult": "onnx_graph",
        "VerifyConfig": "onnx_graph",
        "export_onnx": "onnx_graph",
        "RandomInitConfig": "from_checkpoint",
        "export_checkpoint": "from_checkpoint",
    },
)
