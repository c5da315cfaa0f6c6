"""Read CenterNet checkpoints (original ``{'epoch', 'state_dict'}`` format or a bare state_dict).

A checkpoint is untrusted input: it is read with ``torch.load(weights_only=True)``, and every
way it can fail to match the architecture ends in one ``CheckpointError`` that names the
missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from centernet.errors import CheckpointError
from centernet.models import DEFAULT_ARCH, create_model
from centernet.models.resnet import RESDCN_DEPTHS, RESNET_SPEC
from centernet.types import DEFAULT_INPUT_SIZE, ModelSpec

_SHOW = 4  # keys listed per category in a mismatch message


@dataclass
class LoadedCheckpoint:
    """A model with its weights loaded, and what the checkpoint said about itself."""

    model: nn.Module
    arch: str
    num_classes: int
    arch_args: dict[str, Any] = field(default_factory=dict)
    arch_source: str = "given"  # given | stored (in the checkpoint) | inferred (from its keys)
    epoch: int | None = None
    class_names: list[str] | None = None
    input_size: tuple[int, int] | None = None  # (height, width) it was trained for, if stored

    def model_spec(
        self,
        input_size: tuple[int, int] | None = None,
        classes_file: str | Path | None = None,
        **fields: Any,
    ) -> ModelSpec:
        """How a model of this checkpoint describes itself: the stored class names (else
        ``classes_file``, COCO's 80 or ``class_i``) and input size (else 512x512), unless
        given; ``fields`` set the rest (batch, ...)."""
        from centernet.classes import class_names_for

        names = self.class_names
        if names is None or classes_file:
            names = class_names_for(self.num_classes, classes_file)
        extra = dict(fields.pop("extra", {}))
        if self.arch_args:
            extra["arch_args"] = self.arch_args
        return ModelSpec(
            arch=self.arch,
            num_classes=self.num_classes,
            class_names=names,
            input_size=input_size or self.input_size or DEFAULT_INPUT_SIZE,
            extra=extra,
            **fields,
        )


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (state_dict without ``module.`` prefixes, the checkpoint's other entries)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    kind = sniff_non_checkpoint(path)
    if kind:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint: {kind}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-checkpoint file
        raise CheckpointError(f"{path}: {_load_failure(str(exc), type(exc).__name__)}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(obj).__name__})")
    extra: dict[str, Any] = {}
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        extra = {k: v for k, v in obj.items() if k not in ("state_dict", "optimizer")}
        obj = obj["state_dict"]
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: no tensors in the checkpoint")
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in tensors.items()}
    return state, extra


_IMAGE_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG": "PNG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; a legacy pickle


def sniff_non_checkpoint(path: Path) -> str | None:
    """What a file that is certainly not a checkpoint is, from its first bytes; else None."""
    with path.open("rb") as f:
        head = f.read(4096)
    if not head:
        return "the file is empty"
    if head.startswith(_CHECKPOINT_MAGIC):
        return None  # torch's own formats: torch.load says whether it holds a checkpoint
    for magic, name in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return f"it is a {name} image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it is a WebP image"
    if head.startswith(b"\x93NUMPY"):
        return "it is a NumPy array file (.npy)"
    if _is_onnx(path):
        return "it is an ONNX model, already exported: give it to `centernet build` or `detect`"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "it is a text file"
        except UnicodeDecodeError:
            pass
    return None


def _is_onnx(path: Path) -> bool:
    """An ONNX ModelProto with a graph (protobuf has no magic number: parse it)."""
    import onnx

    if path.suffix.lower() != ".onnx" and path.stat().st_size > 64 * 1024 * 1024:
        return False  # a large file that does not say it is ONNX: not worth parsing twice
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return len(model.graph.node) > 0


def _load_failure(text: str, kind: str) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice to load
    it unsafely (which this tool never offers: a checkpoint can run code when unpickled)."""
    unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsupported:
        return (
            f"it holds a pickled Python object ({unsupported.group(1)}), such as a whole model "
            "saved with torch.save(model), not only tensors. Only tensors are read, because "
            "unpickling objects runs code. Where you trust the file and have the model's "
            "code, re-save its weights: torch.save({'state_dict': model.state_dict()}, "
            "'model.pth')"
        )
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        return "not a PyTorch checkpoint (neither a torch.save archive nor a pickle of tensors)"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return f"a damaged or unreadable PyTorch checkpoint ({lines[0] if lines else kind})"


def num_classes_of(state: dict[str, torch.Tensor]) -> int:
    """The heatmap head's output channels: the last ``hm.*weight`` entry's first dimension."""
    hm_weights = [k for k in state if k.startswith("hm.") and k.endswith("weight")]
    if not hm_weights:
        raise CheckpointError("checkpoint has no 'hm' head: not a CenterNet ctdet checkpoint")
    return int(state[hm_weights[-1]].shape[0])


def infer_arch(keys: set[str]) -> str | None:
    """The original ``--arch`` a state_dict's keys belong to, or None if they fit none.

    Hourglass and DLA are told apart by their top-level modules, DCN by the
    ``conv_offset_mask`` of its offset branch, and a ResNet's depth by its block type
    (``conv3`` only in bottlenecks) and the number of blocks in each stage.
    """
    if any(k.startswith("pre.") for k in keys) and any(k.startswith("kps.") for k in keys):
        return "hourglass"
    if any(k.startswith("base.") for k in keys) and any(k.startswith("dla_up.") for k in keys):
        deformable = any(".conv_offset_mask." in k or k.startswith("ida_up.") for k in keys)
        return "dla_34" if deformable else "dlav0_34"
    if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        kind = "bottleneck" if "layer1.0.conv3.weight" in keys else "basic"
        blocks = tuple(
            len({k.split(".")[1] for k in keys if k.startswith(f"layer{stage}.")})
            for stage in (1, 2, 3, 4)
        )
        depth = next((d for d, spec in RESNET_SPEC.items() if spec == (kind, blocks)), None)
        if depth is None:
            return None
        if any(k.startswith("deconv_layers.") and "conv_offset_mask" in k for k in keys):
            return f"resdcn_{depth}" if depth in RESDCN_DEPTHS else None
        return f"res_{depth}"
    return None


def guess_family(keys: set[str]) -> str | None:
    """Name the original architecture a key set looks like, for error messages."""
    arch = infer_arch(keys)
    if arch is not None:
        family = "hourglass" if arch == "hourglass" else "DLA" if "dla" in arch else "ResNet"
        return f"{arch} ({family})"
    if any(k.startswith("layer1.") for k in keys):
        dcn = any("conv_offset_mask" in k for k in keys)
        return "a ResNet (resdcn_*)" if dcn else "a ResNet (res_*)"
    return None


def _describe(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def check_compatible(model: nn.Module, state: dict[str, torch.Tensor], arch: str) -> None:
    """Raise one CheckpointError naming every kind of mismatch, or return quietly."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or misshaped):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_describe(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_describe(unexpected)})")
    if misshaped:
        parts.append(f"{len(misshaped)} mis-shaped ({_describe(misshaped)})")
    family = guess_family(set(state))
    hint = f"; its keys look like {family}" if family and not family.startswith(arch) else ""
    raise CheckpointError(f"checkpoint does not match {arch}: " + "; ".join(parts) + hint)


def load_checkpoint(path: str | Path, arch: str | None = None) -> LoadedCheckpoint:
    """Build the architecture and load the checkpoint into it strictly; eval mode.

    Without ``arch``, the one stored in the checkpoint (our own) or the one its keys show
    (original checkpoints) is used; ``arch_source`` says which.
    """
    state, extra = read_state_dict(path)
    stored_arch = extra.get("arch") if isinstance(extra.get("arch"), str) else None
    source = "given" if arch else "stored" if stored_arch else "inferred"
    if not arch:
        arch = stored_arch or infer_arch(set(state))
    if not arch:
        source, arch = "default", DEFAULT_ARCH
    arch_args = extra.get("arch_args") if arch == stored_arch else None
    arch_args = dict(arch_args) if isinstance(arch_args, dict) else {}
    num_classes = num_classes_of(state)
    model = create_model(arch, num_classes, **arch_args)
    check_compatible(model, state, arch)
    model.load_state_dict(state, strict=True)
    model.eval()
    names = extra.get("class_names")
    epoch = extra.get("epoch")
    size = extra.get("input_size")
    valid_size = isinstance(size, (list, tuple)) and len(size) == 2
    valid_size = valid_size and all(isinstance(v, int) and v > 0 for v in size)
    return LoadedCheckpoint(
        model=model,
        arch=arch,
        num_classes=num_classes,
        arch_args=arch_args,
        arch_source=source,
        epoch=int(epoch) if isinstance(epoch, int) else None,
        class_names=list(names) if isinstance(names, list) and len(names) == num_classes else None,
        input_size=(int(size[0]), int(size[1])) if valid_size else None,
    )


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    epoch: int,
    arch: str,
    arch_args: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    input_size: tuple[int, int] | None = None,
) -> None:
    """Write the original format ``{'epoch', 'state_dict'}`` plus what rebuilds the model.

    The extra keys (arch, arch_args, class_names, input_size) are plain data, so the
    original CenterNet loader, which reads only ``state_dict``, still accepts the file.
    ``input_size`` is the fix_res input the model was trained for: export, the torch
    engine and the demo use it when not told otherwise.
    """
    data: dict[str, Any] = {"epoch": epoch, "state_dict": model.state_dict(), "arch": arch}
    if arch_args:
        data["arch_args"] = dict(arch_args)
    if class_names:
        data["class_names"] = list(class_names)
    if input_size:
        data["input_size"] = [int(v) for v in input_size]
    if optimizer is not None:
        data["optimizer"] = optimizer.state_dict()
    data.update(extra or {})
    torch.save(data, Path(path))
