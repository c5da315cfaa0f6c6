"""A checkpoint (or untrained weights, to try the tool) to a verified ONNX export: the
network loaded strictly (``models/checkpoint.py``), its ModelSpec with where the weights
came from, then ``export_onnx``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from centernet.errors import CenterNetError, MissingDependencyError
from centernet.export.onnx_graph import ExportConfig, ExportResult, export_onnx

RANDOM_WEIGHTS_NOTE = "random initialisation: not trained, detections are meaningless"


@dataclass(frozen=True)
class RandomInitConfig:
    """Untrained weights instead of a checkpoint: for trying the tool, not for detecting."""

    num_classes: int = 80
    seed: int = 0


def export_checkpoint(
    checkpoint: str | Path | None,
    output: str | Path,
    config: ExportConfig = ExportConfig(),
    arch: str | None = None,
    input_size: tuple[int, int] | None = None,
    classes_file: str | None = None,
    random_init: RandomInitConfig | None = None,
) -> ExportResult:
    """Write ``output``: ``checkpoint`` (architecture stored in or inferred from it unless
    ``arch`` names one; ``input_size`` and ``classes_file`` override what it stores) or,
    with ``random_init`` and no checkpoint, an untrained network, exported and verified."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "torch") from None
    from centernet.models import DEFAULT_ARCH, create_model, settle_batchnorm
    from centernet.models.checkpoint import LoadedCheckpoint, load_checkpoint
    from centernet.types import DEFAULT_INPUT_SIZE

    if checkpoint is None:
        if random_init is None:
            raise CenterNetError(
                "give a checkpoint, or `random_init` for untrained weights"
            )
        torch.manual_seed(random_init.seed)
        arch = arch or DEFAULT_ARCH
        network = create_model(arch, random_init.num_classes)
        network = settle_batchnorm(network, input_size or DEFAULT_INPUT_SIZE)
        loaded = LoadedCheckpoint(network, arch, random_init.num_classes)
        extra = {"weights": RANDOM_WEIGHTS_NOTE}
    else:
        loaded = load_checkpoint(checkpoint, arch)
        extra = {"checkpoint": Path(checkpoint).name}
    spec = loaded.model_spec(input_size, classes_file, extra=extra)
    result = export_onnx(loaded.model, output, spec, config)
    result.arch_inferred = loaded.arch_source == "inferred"
    return result
