"""Evaluation of an architecture's cheap metrics: exact parameters and MACs, LUT latency and MES."""

from __future__ import annotations

from typing import Any

import supernet
from search_spaces import Arch

from .mes import mes


def stage_breakdown(arch: Arch, lut: Any = None) -> list[dict[str, Any]]:
    """Parameters, MACs (and the table's summed layer latency) of the stem, each stage and the head."""
    n_stages = len(arch.depths)
    rows: list[dict[str, Any]] = []
    for index in range(n_stages + 2):
        name = "stem" if index == 0 else ("head" if index == n_stages + 1 else f"stage{index}")
        row: dict[str, Any] = {"stage": name, "params": 0, "macs": 0}
        if 0 < index <= n_stages:
            s = index - 1
            row.update(depth=arch.depths[s], width=arch.widths[s], ratios=list(arch.ratios[s]), mixers=list(arch.mixers[s]))
        if lut is not None:
            row["layer_ms"] = 0.0
        rows.append(row)
    for spec in arch.layers():
        counts = supernet.count_layer(spec)
        rows[spec.stage]["params"] += counts.params
        rows[spec.stage]["macs"] += counts.macs
        if lut is not None:
            rows[spec.stage]["layer_ms"] += lut.layer_ms_of(spec)
    return rows


def evaluate(
    arch: Arch,
    device: str | None = None,
    *,
    lut: Any = None,
    mes_alpha: dict[str, float] | None = None,
    mes_unit: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Cheap metrics of `arch`: exact parameters and MACs (no model is built), the latency that the
    device's table predicts (the default device when none is named) with the table's typical error
    (``latency_error_ms``: its held-out mean absolute error, None for a measured table) and the Mobile
    Efficiency Score."""
    import latency_lut

    counts = supernet.count(arch)
    lut = lut or latency_lut.load(device)
    latency = lut.predict(arch)
    return {
        "params": counts.params,
        "macs": counts.macs,
        "latency_ms": latency,
        "mes": mes(counts.params, latency, mes_alpha, mes_unit),
        "device": lut.device,
        "device_provenance": lut.provenance,
        "latency_error_ms": None if lut.error_pct is None else latency * lut.error_pct / 100,
    }
