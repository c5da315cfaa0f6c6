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
    target: str = "onnx"  # "onnx" (QDQ) or "openvino" (NNCF IR)
    nodes_quantized: int = 0
    nodes_total: int = 0
    kept: list[KeptLayer] = field(default_factory=list)  # ONNX node names, both back ends
    skipped_images: list[str] = field(default_factory=list)
    search: SearchResult | None = None  # int8-mixed: what the layer search measured
    finetune: FinetuneResult | None = None  # fine-tuning (QDQ only): what it did
    ranges_reused: bool = False  # the activation ranges came from calibration.ranges_file
    openvino_names: dict[str, str] = field(default_factory=dict)  # IR: ONNX node -> op
