"""Torch engine: runs an original (or our own) checkpoint as is, on CPU or CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from centernet.engines.base import EngineOptions, check_runtime_precision
from centernet.errors import CenterNetError
from centernet.export import DeployModel
from centernet.modelfile import MAP_OUTPUTS
from centernet.models.checkpoint import load_checkpoint
from centernet.types import ModelSpec


class TorchEngine:
    """A network wrapped like the exported graph (sigmoid + max-pool), in eager mode."""

    name = "torch"
    inference_precision = "fp32"

    def __init__(self, network: nn.Module, spec: ModelSpec, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = DeployModel(network).to(self.device).eval()
        self.spec = spec

    @classmethod
    def from_network(cls, network: nn.Module, spec: ModelSpec, device="cpu") -> TorchEngine:
        """Wrap an in-memory network (training's validation uses this)."""
        return cls(network, spec, device)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, options: EngineOptions = EngineOptions()
    ) -> TorchEngine:
        check_runtime_precision(cls.name, options.precision, ("fp32",))
        if options.device == "cuda" and not torch.cuda.is_available():
            raise CenterNetError("torch has no CUDA device here; use --device cpu")
        if options.threads:
            torch.set_num_threads(options.threads)
        loaded = load_checkpoint(path, options.arch)
        spec = loaded.model_spec(
            options.input_size, options.classes_file, batch="dynamic", dynamic_size=True
        )
        return cls(loaded.model, spec, options.device)

    @property
    def batch_size(self) -> int | None:
        return None

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.model(torch.from_numpy(batch).to(self.device))
        return {name: t.float().cpu().numpy() for name, t in zip(MAP_OUTPUTS, outputs)}
