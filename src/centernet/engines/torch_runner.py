"""How the torch engine runs its network: arithmetic, memory layout and CUDA graphs.

On a GPU an eager forward pass of a small batch is bound by kernel launches, not by the
card; a CUDA graph replays the whole pass as one launch. Each input shape gets its own
graph with a static input buffer, captured after warm-up passes (which also let cuDNN
pick its kernels) the second time the shape is seen, or at once when asked for
(``warm_up``, ``input_buffer``): a folder of keep_res images of many sizes runs eagerly
instead of holding a graph (and its memory) per size; at most ``MAX_GRAPHS`` are kept.
``channels_last`` lets cuDNN use its NHWC tensor-core kernels.
Half precisions (fp16, bf16) run the network's weights and activations in that type and
hand the heads back in float32, so the sigmoid, the peak test and the boxes are float32 as
in every other engine. ``fp32`` is true float32 (TF32 off); ``tf32`` lets cuDNN use TF32.

On the CPU, graphs are never captured: the runner calls the model eagerly, the same
function a graph would replay.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from centernet.errors import CenterNetError
from centernet.models.deploy import DeployModel

#: Run-time precisions of the torch engine (the other engines: see engines/base.py).
TORCH_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
           "bf16": torch.bfloat16}  # fmt: skip
CAPTURES = ("eager", "graph", "compile")
_WARMUP_PASSES = 3  # before a capture: cuDNN autotuning and lazy initialisation
MAX_GRAPHS = 16  # graphs (each with its own memory pool) one runner keeps


@dataclass(frozen=True)
class RunConfig:
    """Resolved settings of one torch network: where, in what arithmetic and layout, and
    how passes are launched (eager, a CUDA graph per shape, or torch.compile)."""

    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    capture: str = "eager"

    def __post_init__(self) -> None:
        if self.precision not in TORCH_PRECISIONS:
            raise CenterNetError(
                f"unknown precision {self.precision!r} for the torch engine; "
                f"choose from {', '.join(TORCH_PRECISIONS)}"
            )
        if self.capture not in CAPTURES:
            raise CenterNetError(f"unknown capture {self.capture!r}; choose {', '.join(CAPTURES)}")
        if self.precision == "tf32" and not self.on_cuda:
            raise CenterNetError("tf32 is a CUDA mode (tensor cores); on the CPU use fp32 or bf16")
        if self.capture == "graph" and not self.on_cuda:
            raise CenterNetError('CUDA graphs need `device="cuda"`')

    @property
    def on_cuda(self) -> bool:
        return torch.device(self.device).type == "cuda"

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.precision]

    @classmethod
    def resolve(
        cls,
        device: str = "cpu",
        precision: str | None = None,
        channels_last: bool | None = None,
        capture: str | None = None,
    ) -> RunConfig:
        """Settings with the device's best defaults for what is not given: on CUDA, a
        CUDA graph per shape, and channels_last for tf32/fp16/bf16 (tensor-core NHWC
        kernels) but not fp32, where cuDNN's NCHW kernels measured faster (H200, dlav0_34
        at 512, batch 8: 452 against 374 img/s; BENCHMARKS.md "GPU"); on the CPU,
        contiguous and eager."""
        on_cuda = torch.device(device).type == "cuda"
        if on_cuda and not torch.cuda.is_available():
            raise CenterNetError('torch has no CUDA device here; use `device="cpu"`')
        precision = precision or "fp32"
        if channels_last is None:
            channels_last = on_cuda and precision != "fp32"
        return cls(
            device=device,
            precision=precision,
            channels_last=channels_last,
            capture=capture or ("graph" if on_cuda else "eager"),
        )


def cudnn_arithmetic(settings: RunConfig) -> contextlib.AbstractContextManager:
    """cuDNN's settings for ``settings`` while a pass runs or is captured: TF32 only for
    "tf32" (PyTorch lets cuDNN use it by default, which would make "fp32" TF32), and
    autotuned kernels. Nothing on the CPU."""
    if not settings.on_cuda:
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(
        enabled=True,
        benchmark=True,
        deterministic=False,
        allow_tf32=settings.precision == "tf32",
    )


class _InPrecision(nn.Module):
    """The network in its run-time dtype and layout; the heads come back as float32."""

    def __init__(self, network: nn.Module, dtype: torch.dtype, channels_last: bool) -> None:
        super().__init__()
        self.network = network
        self.dtype = dtype
        self.layout = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.network(x.to(dtype=self.dtype, memory_format=self.layout))
        return {name: value.float() for name, value in out.items()}


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    input: torch.Tensor
    outputs: tuple[torch.Tensor, ...]


class NetworkRunner:
    """``runner(x)`` -> ``(hm_max, hm, wh, reg)`` float32 on the runner's device, for a
    float32 NCHW ``x`` on that device.

    With graphs, the outputs are the graph's static buffers: valid until the next pass of
    the same shape, so read (or copy) them before running again. Passing the tensor from
    ``input_buffer(shape)`` skips the copy into the graph's input.
    """

    def __init__(self, network: nn.Module, settings: RunConfig) -> None:
        self.settings = settings
        self.device = torch.device(settings.device)
        network = network.to(self.device, dtype=settings.dtype).eval()
        if settings.channels_last:
            network = network.to(memory_format=torch.channels_last)
        model: nn.Module = DeployModel(
            _InPrecision(network, settings.dtype, settings.channels_last)
        )
        self.model = model.eval()
        self._forward = self.model
        if settings.capture == "compile":
            self._forward = torch.compile(self.model, mode="reduce-overhead", dynamic=False)
        self._graphs: dict[tuple[int, ...], _Graph] = {}
        self._seen: set[tuple[int, ...]] = set()  # shapes run once, eagerly

    @property
    def graph_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes a CUDA graph has been captured for."""
        return list(self._graphs)

    def arithmetic(self) -> contextlib.AbstractContextManager:
        return cudnn_arithmetic(self.settings)

    def input_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Where to write a batch of ``shape``: the graph's static input when graphs are
        on (captured now if new), else a new tensor."""
        if self.settings.capture != "graph":
            return torch.empty(shape, dtype=torch.float32, device=self.device)
        return self._graph_for(tuple(shape), None).input

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, allow_graph: bool = True) -> tuple[torch.Tensor, ...]:
        """The maps of ``x``; ``allow_graph=False`` runs eagerly (shapes seen once, such
        as keep_res images, are not worth a graph each)."""
        shape = tuple(x.shape)
        if self.settings.capture == "graph" and allow_graph and self._worth_a_graph(shape):
            graph = self._graph_for(shape, x)
        else:
            with self.arithmetic():
                return self.model(x) if self.settings.capture == "graph" else self._forward(x)
        if x.data_ptr() != graph.input.data_ptr():
            graph.input.copy_(x)
        graph.graph.replay()
        return graph.outputs

    @torch.no_grad()
    def warm_up(self, shape: tuple[int, ...]) -> None:
        """Run (with graphs: capture) one pass of ``shape`` now, outside timed work."""
        if self.settings.capture == "graph":
            self._graph_for(tuple(shape), None).graph.replay()
        else:
            self(torch.zeros(shape, dtype=torch.float32, device=self.device))
        if self.settings.on_cuda:
            torch.cuda.synchronize(self.device)

    def _worth_a_graph(self, shape: tuple[int, ...]) -> bool:
        """A graph for a shape already captured, or seen before while there is room."""
        if shape in self._graphs:
            return True
        if shape not in self._seen:
            self._seen.add(shape)
            return False
        return len(self._graphs) < MAX_GRAPHS

    def _graph_for(self, shape: tuple[int, ...], first: torch.Tensor | None) -> _Graph:
        found = self._graphs.get(shape)
        if found is None:
            found = self._graphs[shape] = self._capture(shape, first)
        return found

    @torch.no_grad()
    def _capture(self, shape: tuple[int, ...], first: torch.Tensor | None) -> _Graph:
        static = torch.zeros(shape, dtype=torch.float32, device=self.device)
        if first is not None:
            static.copy_(first)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with self.arithmetic(), torch.cuda.stream(side):
            for _ in range(_WARMUP_PASSES):
                self.model(static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with self.arithmetic(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
            outputs = self.model(static)
        return _Graph(graph, static, tuple(outputs))
