"""Exact parameters and MACs of architectures, from their layer specs alone (no model is built).

Each layer class counts itself from its spec (``count``, beside the code that defines it); these sum
over an architecture's layers, one at a time (:func:`count`) or vectorised over a space's integer
encodings (:func:`count_tables`). MACs are those of convolutions, matmuls and linear layers (what
``torch.utils.flop_counter`` counts, halved).
"""

from __future__ import annotations

import weakref
from functools import cache
from typing import NamedTuple

from search_spaces import Arch, LayerSpec, Space
from search_spaces.costs import CostTables

from .layers import LAYER_CLASSES


class Counts(NamedTuple):
    params: int
    macs: int


@cache
def count_layer(spec: LayerSpec) -> Counts:
    """Exact parameters and MACs of one layer, from its spec (cached by key)."""
    return Counts(*LAYER_CLASSES[spec.kind].count(spec))


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
            metric: space.cost_tables(lambda spec, m=metric: getattr(count_layer(spec), m)) for metric in ("params", "macs")
        }
    return tables


__all__ = ["Counts", "count", "count_layer", "count_tables"]
