"""Torch engine: runs an original (or our own) checkpoint as is, on CPU or CUDA.

On CUDA it is the accelerator engine: fp32 / tf32 / fp16 / bf16, channels_last and a CUDA
graph per batch size by default (``torch_runner.py``), warmed up at load. ``forward``
keeps the maps on the device for the device pipeline (``device.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from centernet.engines.base import EngineConfig
from centernet.engines.torch_runner import NetworkRunner, RunConfig
from centernet.modelfile.spec import MAP_OUTPUTS
from centernet.models.checkpoint import load_checkpoint
from centernet.types import ModelSpec


class TorchEngine:
    """A network wrapped like the exported graph (sigmoid + max-pool)."""

    name = "torch"

    def __init__(
        self,
        network: nn.Module,
        spec: ModelSpec,
        device: str | torch.device = "cpu",
        settings: RunConfig | None = None,
    ):
        self.settings = settings or RunConfig.resolve(str(device), "fp32", False, "eager")
        self.device = torch.device(self.settings.device)
        self.runner = NetworkRunner(network, self.settings)
        self.model = self.runner.model
        self.spec = spec

    @property
    def inference_precision(self) -> str:
        return self.settings.precision

    @classmethod
    def from_network(cls, network: nn.Module, spec: ModelSpec, device="cpu") -> TorchEngine:
        """Wrap an in-memory network (training's validation uses this): eager fp32."""
        return cls(network, spec, device)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, options: EngineConfig = EngineConfig()
    ) -> TorchEngine:
        settings = RunConfig.resolve(
            options.device, options.precision, options.channels_last, options.capture
        )
        if options.threads:
            torch.set_num_threads(options.threads)
        loaded = load_checkpoint(path, options.arch)
        spec = loaded.model_spec(
            options.input_size, options.classes_file, batch="dynamic", dynamic_size=True
        )
        engine = cls(loaded.model, spec, settings=settings)
        if settings.on_cuda:  # CUDA context, cuDNN autotuning and batch 1's graph, now
            engine.runner.warm_up((1, 3, *spec.input_size))
        return engine

    @property
    def batch_size(self) -> int | None:
        return None

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(hm_max, hm, wh, reg) float32 on the engine's device, for a float32 NCHW batch
        already there; with CUDA graphs these are static buffers (see NetworkRunner)."""
        return self.runner(batch)

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.runner(torch.from_numpy(batch).to(self.device))
        return {name: t.float().cpu().numpy() for name, t in zip(MAP_OUTPUTS, outputs)}
