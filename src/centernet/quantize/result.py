"""What a precision build made and measured, whichever back end wrote it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from centernet.quantize.finetune import FinetuneResult
from centernet.quantize.float_layers import KeptLayer
from centernet.quantize.search import SearchResult
from centernet.types import ModelSpec


@dataclass
class BuildResult:
    path: Path  # the .onnx, or the IR's .xml (its .bin beside it)
    spec: ModelSpec
    seconds: float
    size_bytes: int  # an IR: .xml + .bin
    engine: str = "onnxruntime"  # whose quantization rules it follows (openvino: the IR)
    ir: bool = False  # an OpenVINO IR (else a QDQ .onnx)
    nodes_quantized: int = 0
    nodes_total: int = 0
    kept: list[KeptLayer] = field(default_factory=list)  # ONNX node names, both back ends
    skipped_images: list[str] = field(default_factory=list)
    search: SearchResult | None = None  # int8-mixed: what the layer search measured
    finetune: FinetuneResult | None = None  # fine-tuning (QDQ only): what it did
    ranges_reused: bool = False  # the activation ranges came from calibration.ranges_file
    openvino_names: dict[str, str] = field(default_factory=dict)  # IR: ONNX node -> op
    int8_share: float = 0.0  # share of the convolution multiply-adds in int8 layers

    def describe_target(self) -> str:
        """What kind of file this is, in words."""
        if self.ir:
            return "an OpenVINO IR"
        return "a QDQ .onnx" if self.spec.precision.startswith("int8") else "an .onnx"
