"""Evaluation of an architecture's cheap metrics: exact parameters and MACs, per stage."""

from __future__ import annotations

from typing import Any

import supernet
from search_spaces import Arch

from .errors import BadInput


def stage_breakdown(arch: Arch) -> list[dict[str, Any]]:
    """Parameters and MACs of the stem, each stage (with its downsampling) and the head."""
    n_stages = len(arch.depths)
    rows: list[dict[str, Any]] = []
    for index in range(n_stages + 2):
        name = "stem" if index == 0 else ("head" if index == n_stages + 1 else f"stage{index}")
        row: dict[str, Any] = {"stage": name, "params": 0, "macs": 0}
        if 0 < index <= n_stages:
            s = index - 1
            row.update(depth=arch.depths[s], width=arch.widths[s], ratios=list(arch.ratios[s]), mixers=list(arch.mixers[s]))
        rows.append(row)
    for spec in arch.layers():
        counts = supernet.count_layer(spec)
        rows[spec.stage]["params"] += counts.params
        rows[spec.stage]["macs"] += counts.macs
    return rows


def evaluate(arch: Arch, device: str | None = None) -> dict[str, Any]:
    """Cheap metrics of `arch`: exact parameter and MAC counts, computed without building a model.

    Latency and MES need a device latency table; none is installed yet, so naming a device is an error.
    """
    if device is not None:
        raise BadInput(f"unknown device {device!r}: no latency tables are installed")
    counts = supernet.count(arch)
    return {"params": counts.params, "macs": counts.macs}
