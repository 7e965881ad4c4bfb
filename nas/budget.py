"""Budgets (``params=3M latency=1ms macs=400M mes=50``): hard limits on metrics, and the fail-fast
check that they can be met at all.

A :class:`Budget` is a tuple of :class:`Limit` s, the one place that knows how a limit is met, how far
it is missed, how Optuna stores it and how it prints; everything that loops over budgeted metrics
(violations, constraints, repair, feasibility) asks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadInput, Infeasible
from .mes import mes as mobile_efficiency_score
from .quantities import COUNT_KEYS, parse_quantity

EXAMPLE = "e.g. --budget params=3M latency=1ms (also macs=400M, mes=50)"
_KEYS = {
    "params": "params",
    "parameters": "params",
    "size": "params",
    "macs": "macs",
    "latency": "latency_ms",
    "latency_ms": "latency_ms",
    "mes": "mes",
}
#: The space's metrics that a budget may limit, and whether the limit is a maximum or a minimum.
STANDARD_BOUNDS = {"params": "max", "macs": "max", "latency_ms": "max", "mes": "min"}


@dataclass(frozen=True)
class Limit:
    """``key <= value`` (`bound` ``max``) or ``key >= value`` (``min``) on one metric."""

    key: str
    bound: str
    value: float

    def __post_init__(self) -> None:
        if self.bound not in ("max", "min"):
            raise ValueError(f"Limit bound must be 'max' or 'min', got {self.bound!r}")

    def excess(self, metric: float) -> float:
        """The relative excess: <= 0 when the limit holds (Optuna's constraint convention)."""
        return metric / self.value - 1.0 if self.bound == "max" else self.value / metric - 1.0

    def holds(self, metric: float) -> bool:
        return metric <= self.value if self.bound == "max" else metric >= self.value

    def violation(self, metric: float) -> str:
        """``params=3.6e+06 > 3e+06`` for a metric that misses the limit."""
        if self.bound == "max":
            return f"{self.key}={metric:g} > {self.value:g}"
        return f"{self.key}={metric:.4g} < {self.value:g}"

    def __str__(self) -> str:
        if self.key in COUNT_KEYS:
            return f"{self.key}<={self.value:,.0f}"
        name = "latency" if self.key == "latency_ms" else self.key
        unit = "ms" if self.key == "latency_ms" else ""
        return f"{name}{'<=' if self.bound == 'max' else '>='}{self.value:g}{unit}"


class Budget:
    """Hard limits a search must meet: by default maxima of params, MACs and latency (ms) and a minimum
    of MES; a problem of one's own limits its own metrics through `limits`."""

    def __init__(
        self,
        params: float | None = None,
        macs: float | None = None,
        latency_ms: float | None = None,
        mes: float | None = None,
        *,
        limits: Iterable[Limit] = (),
    ):
        standard = {"params": params, "macs": macs, "latency_ms": latency_ms, "mes": mes}
        self.limits: tuple[Limit, ...] = tuple(
            Limit(key, STANDARD_BOUNDS[key], float(value)) for key, value in standard.items() if value is not None
        ) + tuple(limits)
        keys = [limit.key for limit in self.limits]
        if len(set(keys)) != len(keys):
            raise BadInput(f"budget: a metric is limited twice ({', '.join(keys)})")

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

    @classmethod
    def of(cls, limits: Mapping[str, float], bounds: Mapping[str, str] | None = None) -> Budget:
        """A budget from ``{metric: value}``; `bounds` says which metrics are minima (``"min"``; default
        the standard ones', and ``max`` for others). ``latency`` is read as ``latency_ms``."""
        bounds = {**STANDARD_BOUNDS, **(bounds or {})}
        out = []
        for key, value in limits.items():
            key = {"latency": "latency_ms"}.get(key, key)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise BadInput(f"budget {key}={value!r}: not a number") from None
            if not number > 0 or number == float("inf"):
                raise BadInput(f"budget {key}={value!r}: must be a positive, finite number")
            out.append(Limit(key, bounds.get(key, "max"), number))
        return cls(limits=out)

    def get(self, key: str) -> float | None:
        """The limit on metric `key`, or None when it is not budgeted."""
        return next((limit.value for limit in self.limits if limit.key == key), None)

    params = property(lambda self: self.get("params"))
    macs = property(lambda self: self.get("macs"))
    latency_ms = property(lambda self: self.get("latency_ms"))
    mes = property(lambda self: self.get("mes"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Budget) and self.limits == other.limits

    def __hash__(self) -> int:
        return hash(self.limits)

    def __repr__(self) -> str:
        return f"Budget({', '.join(f'{limit.key}={limit.value:g}' for limit in self.limits)})"

    def to_dict(self) -> dict[str, float]:
        """The JSON form: only the budgeted metrics (counts as integers)."""
        return {limit.key: int(limit.value) if limit.key in COUNT_KEYS else limit.value for limit in self.limits}

    def violations(self, metrics: Mapping[str, Any]) -> list[str]:
        """What `metrics` exceed or miss, as readable strings."""
        return [limit.violation(metrics[limit.key]) for limit in self.limits if not limit.holds(metrics[limit.key])]

    def satisfied(self, metrics: Mapping[str, Any]) -> bool:
        return not self.violations(metrics)

    def constraints(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Optuna's constraints: per budgeted metric, the relative excess (<= 0 when the budget holds)."""
        return {limit.key: limit.excess(metrics[limit.key]) for limit in self.limits}

    def excess(self, metrics: Mapping[str, Any]) -> float:
        """How far over budget, summed over metrics as fractions of each limit (0 when feasible)."""
        return sum(max(0.0, value) for value in self.constraints(metrics).values())

    def unmet(self, best: Mapping[str, float], why: Mapping[str, str] | None = None) -> list[str]:
        """The limits that even the `best` achievable value of their metric misses, said with that value
        (and, from `why`, how that value was found)."""
        out = []
        for limit in self.limits:
            value = best.get(limit.key)
            if value is None or limit.holds(value):
                continue
            how = f", {why[limit.key]}" if why and limit.key in why else ""
            if limit.bound == "max":
                out.append(f"{limit.key} <= {limit.value:g} (smallest achievable: {value:,.6g}{how})")
            else:
                out.append(f"{limit.key} >= {limit.value:g} (at most {value:.4g}{how})")
        return out

    def __str__(self) -> str:
        return " ".join(str(limit) for limit in self.limits) or "no budget"


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


def check_feasible(
    budget: Budget, space: Any, lut: Any = None, mes_alpha: dict | None = None, mes_unit: dict | None = None
) -> dict[str, Any]:
    """Raise Infeasible (exit 3) when no architecture of `space` can meet a budgeted metric, naming the
    best achievable value of each; return the minima (see :func:`smallest_achievable`) otherwise."""
    if (budget.latency_ms is not None or budget.mes is not None) and lut is None:
        raise BadInput("a latency or MES budget needs a device latency table (--device)")
    minima = smallest_achievable(space, lut)
    best = {key: value for key, (value, _) in minima.items()}
    if budget.mes is not None:
        # MES falls with both params and latency, so the two minima bound it from above
        best["mes"] = mobile_efficiency_score(best["params"], best["latency_ms"], mes_alpha, mes_unit)
    problems = budget.unmet(best, {"mes": "from the smallest params and latency"})
    if problems:
        device = f" on {lut.device}" if lut is not None else ""
        raise Infeasible(f"no architecture of space {space.name!r}{device} can meet " + "; ".join(problems))
    return minima


def latency_straddle(latencies: list[float], limit_ms: float | None, error_pct: float | None) -> str | None:
    """A note when estimated latencies sit so close to a latency budget that the table's own typical
    error (`error_pct`, held out) could put them on the other side: the budget decides nothing for them."""
    if limit_ms is None or error_pct is None or not latencies:
        return None
    near = [ms for ms in latencies if ms * (1 - error_pct / 100) <= limit_ms < ms * (1 + error_pct / 100)]
    if not near:
        return None
    return (
        f"{len(near)} of {len(latencies)} front entries lie within the latency table's typical error (±{error_pct:g}%) "
        f"of the {limit_ms:g} ms budget: on the device they may be over it (or others under it)"
    )


__all__ = ["Budget", "Limit", "STANDARD_BOUNDS", "smallest_achievable", "check_feasible", "latency_straddle"]
