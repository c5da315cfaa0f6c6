"""Architecture registry: ``ARCHS[name](num_classes, **kwargs) -> nn.Module``.

Every architecture returns raw head outputs as a dict (``hm`` before the sigmoid, ``wh``,
``reg``) and has the parameter names of the original CenterNet network of that name.
Importing this package imports torch; inference through ONNX engines never does.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from centernet._lazy import lazy_exports
from centernet.models.dla_dcn import dla_34
from centernet.models.dlav0 import dlav0_34
from centernet.models.hourglass import hourglass
from centernet.models.resnet import RESDCN_DEPTHS, RESNET_SPEC, res_net, resdcn_net

# The original ``--arch`` values of the ctdet models.
ARCHS: dict[str, Callable[..., nn.Module]] = {
    "dlav0_34": dlav0_34,
    "dla_34": dla_34,
    **{f"res_{d}": res_net(d) for d in RESNET_SPEC},
    **{f"resdcn_{d}": resdcn_net(d) for d in RESDCN_DEPTHS},
    "hourglass": hourglass,
}

DEFAULT_ARCH = "dlav0_34"

# reading and writing checkpoints, and the deployed wrappers: lazily (checkpoint.py
# imports this package)
__getattr__, _, _ = lazy_exports(
    __name__,
    {
        "load_checkpoint": "checkpoint",
        "read_state_dict": "checkpoint",
        "save_checkpoint": "checkpoint",
        "DeployModel": "deploy",
        "TopKDeployModel": "deploy",
    },
)


def create_model(arch: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered architecture with ``num_classes`` heatmap channels."""
    from centernet.errors import CenterNetError

    if arch not in ARCHS:
        raise CenterNetError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[arch](num_classes, **kwargs)


def settle_batchnorm(model: nn.Module, input_size: tuple[int, int], steps: int = 2) -> nn.Module:
    """Give an untrained model BatchNorm statistics measured on noise input.

    Freshly initialised running statistics (mean 0, var 1) let activations grow layer after
    layer until the heatmap saturates; measured ones (and heads scaled to unit spread) keep
    a random-weight model in a sane numeric range, so that its export can be checked
    meaningfully. Returns it in eval mode.
    """
    import torch

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the steps
    model.train()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(2, 3, *input_size, generator=generator))
        model.eval()
        # Heads have no normalisation, and networks with unnormalised additions (Hourglass)
        # reach 1e6 there: scale each head's last convolution to unit-spread outputs.
        outputs = model(torch.randn(2, 3, *input_size, generator=generator))
        for name, value in outputs.items():
            last = [m for m in getattr(model, name).modules() if isinstance(m, nn.Conv2d)][-1]
            spread = float(value.std())
            if spread > 10:
                last.weight.data /= spread
                last.bias.data /= spread
    return model
