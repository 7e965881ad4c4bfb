"""Search budgets (``params=3M latency=1ms macs=400M mes=50``) and the fail-fast feasibility check."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from .errors import BadInput, Infeasible
from .mes import mes as mobile_efficiency_score

EXAMPLE = "e.g. --budget params=3M latency=1ms (also macs=400M, mes=50)"
_COUNT_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
_TIME_UNIT = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3, "": 1.0}
_NUMBER = r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)"
_KEYS = {"params": "params", "parameters": "params", "size": "params", "macs": "macs", "latency": "latency_ms",
         "mes": "mes"}


@dataclass(frozen=True)
class Budget:
    """Hard limits a search must meet: maxima of params, MACs and latency (ms); a minimum of MES."""

    params: float | None = None
    macs: float | None = None
    latency_ms: float | None = None
    mes: float | None = None

    @classmethod
    def parse(cls, tokens: str | Iterable[str]) -> Budget:
        """Parse ``KEY=VALUE`` tokens (space- or comma-separated; keys and units case-insensitive)."""
        if isinstance(tokens, str):
            tokens = [tokens]
        parts = [p for token in tokens for p in re.split(r"[,\s]+", token.strip()) if p]
        if not parts:
            raise BadInput(f"empty budget: {EXAMPLE}")
        values: dict[str, float] = {}
        for part in parts:
            key, sep, raw = part.partition("=")
            name = _KEYS.get(key.strip().lower())
            if not sep or name is None:
                raise BadInput(f"budget {part!r}: expected KEY=VALUE with KEY one of params, latency, macs, mes ({EXAMPLE})")
            if name in values:
                raise BadInput(f"budget {part!r}: {key} is given twice")
            values[name] = parse_quantity(name, raw.strip(), part)
        return cls(**values)

    def to_dict(self) -> dict[str, float]:
        """The JSON form of SPEC section 4: only the budgeted metrics (counts as integers)."""
        out: dict[str, float] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = int(value) if f.name in ("params", "macs") else value
        return out

    def violations(self, metrics: dict[str, Any]) -> list[str]:
        """What `metrics` (params, macs, latency_ms, mes) exceed or miss, as readable strings."""
        out = []
        for name in ("params", "macs", "latency_ms"):
            limit = getattr(self, name)
            if limit is not None and metrics[name] > limit:
                out.append(f"{name}={metrics[name]:g} > {limit:g}")
        if self.mes is not None and metrics["mes"] < self.mes:
            out.append(f"mes={metrics['mes']:.4g} < {self.mes:g}")
        return out

    def satisfied(self, metrics: dict[str, Any]) -> bool:
        return not self.violations(metrics)

    def __str__(self) -> str:
        parts = []
        if self.params is not None:
            parts.append(f"params<={self.params:,.0f}")
        if self.macs is not None:
            parts.append(f"macs<={self.macs:,.0f}")
        if self.latency_ms is not None:
            parts.append(f"latency<={self.latency_ms:g}ms")
        if self.mes is not None:
            parts.append(f"mes>={self.mes:g}")
        return " ".join(parts) or "no budget"


def parse_quantity(name: str, raw: str, token: str) -> float:
    """A budget value: `name` is params, macs, latency_ms or mes; errors name the whole `token`."""
    text = raw.lower()
    if name == "latency_ms":
        match = re.fullmatch(_NUMBER + r"\s*(ms|us|µs|s)?", text)
        unit = match.group(2) or "" if match else None
        scale = _TIME_UNIT.get(unit) if match else None
        hint = "a time such as 1ms, 800us or 0.001s"
    elif name in ("params", "macs"):
        match = re.fullmatch(_NUMBER + r"\s*([kmgb]?)", text)
        scale = _COUNT_SUFFIX[match.group(2)] if match else None
        hint = "a count such as 3M, 400M, 1.5G or 3000000"
    else:
        match = re.fullmatch(_NUMBER, text)
        scale = 1.0 if match else None
        hint = "a positive number such as 50"
    if not match or scale is None:
        raise BadInput(f"budget {token!r}: {raw!r} is not {hint}")
    value = float(match.group(1)) * scale
    if value <= 0:
        raise BadInput(f"budget {token!r}: must be positive")
    return value


def smallest_achievable(space: Any, lut: Any = None) -> dict[str, Any]:
    """The smallest params, MACs and (with a table) latency of any architecture of `space`, each with an
    architecture that has it (exact: dynamic programming over the additive per-layer costs)."""
    import supernet

    out: dict[str, Any] = {}
    for metric in ("params", "macs"):
        value, arch = supernet.count_tables(space)[metric].minimum()
        out[metric] = (int(value), arch)
    if lut is not None:
        out["latency_ms"] = lut.minimum(space)
    return out


def check_feasible(budget: Budget, space: Any, lut: Any = None, mes_alpha: dict | None = None,
                   mes_unit: dict | None = None) -> dict[str, Any]:
    """Raise Infeasible (exit 3) when no architecture can meet a budgeted metric, naming the smallest
    achievable value of each; return those minima otherwise."""
    if (budget.latency_ms is not None or budget.mes is not None) and lut is None:
        raise BadInput("a latency or MES budget needs a device latency table (--device)")
    minima = smallest_achievable(space, lut)
    problems = []
    for name in ("params", "macs", "latency_ms"):
        limit = getattr(budget, name)
        if limit is not None and minima[name][0] > limit:
            problems.append(f"{name} <= {limit:g} (smallest achievable: {minima[name][0]:,.6g})")
    if budget.mes is not None:
        # MES falls with both params and latency, so the two minima bound it from above
        best = mobile_efficiency_score(minima["params"][0], minima["latency_ms"][0], mes_alpha, mes_unit)
        if best < budget.mes:
            problems.append(f"mes >= {budget.mes:g} (at most {best:.4g}, from the smallest params and latency)")
    if problems:
        device = f" on {lut.device}" if lut is not None else ""
        raise Infeasible(f"no architecture of space {space.name!r}{device} can meet " + "; ".join(problems))
    return minima
