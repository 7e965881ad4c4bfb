"""Mobile Efficiency Score (EfficientFormerV2): MES = score * prod_i (M_i / U_i) ** -alpha_i.

Defaults are the paper's: size in parameters with unit 3M and alpha 0.5, latency with unit 1 ms and
alpha 1.0 (speed weighted more), score 100. Higher is better. Every constant is configurable.
"""

from __future__ import annotations

DEFAULT_ALPHA = {"latency": 1.0, "params": 0.5}
DEFAULT_UNIT = {"latency": 1.0, "params": 3e6}  # latency in ms
DEFAULT_SCORE = 100.0


def mes(params: float, latency_ms: float, alpha: dict[str, float] | None = None, unit: dict[str, float] | None = None,
        score: float = DEFAULT_SCORE) -> float:
    """The Mobile Efficiency Score of a model with `params` parameters and `latency_ms` latency."""
    alpha = {**DEFAULT_ALPHA, **(alpha or {})}
    unit = {**DEFAULT_UNIT, **(unit or {})}
    metrics = {"params": float(params), "latency": float(latency_ms)}
    value = score
    for name, a in alpha.items():
        if name not in metrics:
            raise ValueError(f"unknown MES metric {name!r} (accepted: {', '.join(metrics)})")
        if metrics[name] <= 0 or unit[name] <= 0:
            raise ValueError(f"MES needs positive {name} and unit, got {metrics[name]} and {unit[name]}")
        value *= (metrics[name] / unit[name]) ** (-a)
    return value
