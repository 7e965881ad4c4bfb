"""Mobile Efficiency Score (EfficientFormerV2): MES = score * prod_i (M_i / U_i) ** -alpha_i.

Defaults are the paper's: size in parameters with unit 3M and alpha 0.5, latency with unit 1 ms and
alpha 1.0 (speed weighted more), score 100. Higher is better. Every constant is configurable.
"""

from __future__ import annotations

import numpy as np

from .errors import BadInput
from .quantities import parse_quantity

DEFAULT_ALPHA = {"latency": 1.0, "params": 0.5}
DEFAULT_UNIT = {"latency": 1.0, "params": 3e6}  # latency in ms
DEFAULT_SCORE = 100.0


def mes(
    params, latency_ms, alpha: dict[str, float] | None = None, unit: dict[str, float] | None = None, score: float = DEFAULT_SCORE
):
    """The Mobile Efficiency Score of a model with `params` parameters and `latency_ms` latency
    (floats give a float; arrays give an array, for scoring many architectures at once)."""
    alpha = {**DEFAULT_ALPHA, **(alpha or {})}
    unit = {**DEFAULT_UNIT, **(unit or {})}
    metrics = {"params": np.asarray(params, dtype=float), "latency": np.asarray(latency_ms, dtype=float)}
    value = np.asarray(score, dtype=float)
    for name, a in alpha.items():
        if name not in metrics:
            raise ValueError(f"unknown MES metric {name!r} (accepted: {', '.join(metrics)})")
        if np.any(metrics[name] <= 0) or unit[name] <= 0:
            raise ValueError(f"MES needs positive {name} and unit, got {metrics[name]} and {unit[name]}")
        value = value * (metrics[name] / unit[name]) ** (-a)
    return float(value) if value.ndim == 0 else value


def parse_mes_options(alpha: str | None = None, unit: str | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """``--mes-alpha latency=1,params=0.5`` and ``--mes-unit latency=1ms,params=3M`` as dictionaries."""

    def pairs(text: str | None, option: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in [p for p in (text or "").replace(" ", ",").split(",") if p]:
            key, sep, raw = part.partition("=")
            key = {"size": "params", "latency_ms": "latency"}.get(key.strip().lower(), key.strip().lower())
            if not sep or key not in DEFAULT_ALPHA:
                raise BadInput(
                    f"{option} {part!r}: expected KEY=VALUE with KEY latency or params (e.g. {option} latency=1,params=0.5)"
                )
            out[key] = raw.strip()
        return out

    alphas = {}
    for key, raw in pairs(alpha, "--mes-alpha").items():
        try:
            alphas[key] = float(raw)
        except ValueError:
            raise BadInput(f"--mes-alpha {key}={raw}: not a number (e.g. --mes-alpha latency=1,params=0.5)") from None
    units = {
        key: parse_quantity("latency_ms" if key == "latency" else "params", raw, f"{key}={raw}", what="--mes-unit")
        for key, raw in pairs(unit, "--mes-unit").items()
    }
    return alphas, units
