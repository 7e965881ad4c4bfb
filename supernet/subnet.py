"""The standalone network of one architecture: plain layers in sequence, nothing elastic."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from search_spaces import Arch, Space

from .layers import LAYER_CLASSES, build_layer


class SubNet(nn.Module):
    """A plain ``nn.Module`` for one architecture, with layers named after the supernet slots.

    ``arch`` is kept as plain data (``arch_dict``) so a saved model needs only this package to load.
    """

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch_dict: dict[str, Any] = arch.to_dict()
        self.layers = nn.Sequential(OrderedDict((spec.name, build_layer(spec)) for spec in arch.layers()))

    @property
    def arch(self) -> Arch:
        return Arch.from_dict(self.arch_dict)

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth for training: block rates rising linearly to `rate` (see drop_path_rates)."""
        rates = drop_path_rates(self.arch.search_space, rate)
        for name, layer in self.layers.named_children():
            if hasattr(layer, "drop_path"):
                layer.drop_path = rates[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def drop_path_rates(space: Space, rate: float) -> dict[str, float]:
    """Stochastic depth rate of every residual slot (FFNs and mixers) of the space's supernet.

    As in EfficientFormerV2, the rate rises linearly from 0 at the first block to `rate` at the last
    (a block's mixer and FFN share it); blocks are counted at the space's largest depths, so a slot has
    the same rate in the supernet and in every subnet extracted from it.
    """
    slots = [
        name for name, variants in space.slot_layers() if any(hasattr(LAYER_CLASSES[kind], "drop_path") for kind in variants)
    ]
    blocks = list(dict.fromkeys(name.rpartition("_")[0] for name in slots))
    step = rate / max(len(blocks) - 1, 1)
    index = {block: i for i, block in enumerate(blocks)}
    return {name: index[name.rpartition("_")[0]] * step for name in slots}


__all__ = ["SubNet", "drop_path_rates"]
