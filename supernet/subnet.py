"""The standalone network of one architecture: plain layers in sequence, nothing elastic."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from search_spaces import Arch

from .layers import Counts, build_layer, count_layer


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def count(arch: Arch) -> Counts:
    """Exact parameters and MACs of an architecture, summed from its layer specs (no model built)."""
    params = macs = 0
    for spec in arch.layers():
        c = count_layer(spec)
        params += c.params
        macs += c.macs
    return Counts(params, macs)
