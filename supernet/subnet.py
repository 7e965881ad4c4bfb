"""The standalone network of one architecture: plain layers in sequence, nothing elastic."""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from search_spaces import Arch, Space
from search_spaces.costs import CostTables

from .layers import LAYER_CLASSES, Counts, build_layer, count_layer


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


def count(arch: Arch) -> Counts:
    """Exact parameters and MACs of an architecture, summed from its layer specs (no model built)."""
    params = macs = 0
    for spec in arch.layers():
        c = count_layer(spec)
        params += c.params
        macs += c.macs
    return Counts(params, macs)


_COUNT_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def count_tables(space: Space) -> dict[str, CostTables]:
    """:func:`count` vectorised over a space's integer encodings: ``{"params": ..., "macs": ...}`` cost
    tables (``.total(codes)``, ``.minimum()``) summing the same per-layer formulas. Built once per space
    (about 0.07 s each) and shared by the search's problem, its surrogate and the budget checks."""
    tables = _COUNT_TABLES.get(space)
    if tables is None:
        tables = _COUNT_TABLES[space] = {
            metric: space.cost_tables(lambda spec, m=metric: getattr(count_layer(spec), m)) for metric in ("params", "macs")}
    return tables


def drop_path_rates(space: Space, rate: float) -> dict[str, float]:
    """Stochastic depth rate of every residual slot (FFNs and mixers) of the space's supernet.

    As in EfficientFormerV2, the rate rises linearly from 0 at the first block to `rate` at the last
    (a block's mixer and FFN share it); blocks are counted at the space's largest depths, so a slot has
    the same rate in the supernet and in every subnet extracted from it.
    """
    slots = [name for name, variants in space.slot_layers()
             if any(hasattr(LAYER_CLASSES[kind], "drop_path") for kind in variants)]
    blocks = list(dict.fromkeys(name.rpartition("_")[0] for name in slots))
    step = rate / max(len(blocks) - 1, 1)
    index = {block: i for i, block in enumerate(blocks)}
    return {name: index[name.rpartition("_")[0]] * step for name in slots}
