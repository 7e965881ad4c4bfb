"""Objectives, Pareto fronts, crowding and hypervolume over search results.

Every objective is turned into a *normalised cost* ``z`` (lower is better) whose reference point is 1:
costs (latency, params, MACs) are divided by their budget, or by the space's largest value when not
budgeted; MES becomes ``reference / mes`` (so ``mes >= reference`` is ``z <= 1``); accuracy becomes
``1 - (accuracy - worst) / scale`` with the estimator's own ``(worst, scale)``. The hypervolume of a
front is then measured in that unit box against the all-ones point, so numbers of different runs with
the same budget and estimator compare directly. Dominance and hypervolume come from ``moocore``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import BadInput

#: objective name -> (metric key in an entry, +1 to maximise / -1 to minimise)
OBJECTIVES: dict[str, tuple[str, int]] = {
    "accuracy": ("accuracy", +1),
    "latency": ("latency_ms", -1),
    "params": ("params", -1),
    "macs": ("macs", -1),
    "mes": ("mes", +1),
}
DEFAULT_OBJECTIVES = ("accuracy", "latency", "params")


def parse_objectives(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"accuracy,latency,params"`` -> a tuple of known, distinct objective names (at least two)."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    aliases = {"latency_ms": "latency", "size": "params", "parameters": "params", "acc": "accuracy"}
    names = [aliases.get(n, n) for n in names]
    for name in names:
        if name not in OBJECTIVES:
            raise BadInput(f"unknown objective {name!r} (choose from {', '.join(OBJECTIVES)}; "
                           "e.g. --objectives accuracy,latency)")
    if len(set(names)) != len(names):
        raise BadInput(f"objectives {','.join(names)}: each may be given once")
    if len(names) < 2:
        raise BadInput(f"objectives {','.join(names) or '(none)'}: a Pareto front needs at least two (e.g. accuracy,latency)")
    return tuple(names)


def direction(name: str) -> str:
    """Optuna's direction for an objective."""
    return "maximize" if OBJECTIVES[name][1] > 0 else "minimize"


@dataclass(frozen=True)
class Normaliser:
    """Maps entries to normalised costs (see the module docstring); `reference` holds, per objective,
    the raw value that normalises to 1 (a budget, the space's largest value, or the estimator's worst)."""

    objectives: tuple[str, ...]
    reference: Mapping[str, float]
    accuracy_scale: float = 1.0

    def costs(self, entries: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(n, k) array of normalised costs; lower is better in every column, 1 is the reference."""
        z = np.empty((len(entries), len(self.objectives)))
        for j, name in enumerate(self.objectives):
            key = OBJECTIVES[name][0]
            values = np.array([float(e[key]) for e in entries], dtype=float)
            ref = self.reference[name]
            if name == "accuracy":
                z[:, j] = 1.0 - (values - ref) / self.accuracy_scale
            elif name == "mes":
                z[:, j] = ref / np.maximum(values, 1e-300)
            else:
                z[:, j] = values / ref
        return z

    def to_dict(self) -> dict[str, float]:
        return {OBJECTIVES[name][0]: float(self.reference[name]) for name in self.objectives}


def common_normaliser(normalisers: Sequence[Normaliser]) -> Normaliser:
    """One normaliser under which runs with different references (budgets, spaces) compare: per objective
    the worst of their raw reference values (the largest cost, the smallest accuracy or MES), i.e. the
    largest of their references once normalised, so every run's own reference box lies inside the common
    one and none of its front is cut off. Accuracy spans the largest of the runs' scales (a common factor,
    which leaves ratios of hypervolumes unchanged)."""
    if not normalisers:
        raise ValueError("common_normaliser() needs at least one normaliser")
    objectives = normalisers[0].objectives
    if any(n.objectives != objectives for n in normalisers):
        raise BadInput("the runs' objectives differ (" + " vs ".join(",".join(n.objectives) for n in normalisers)
                       + "): hypervolumes compare only over the same objectives")
    reference = {}
    for name in objectives:
        values = [float(n.reference[name]) for n in normalisers]
        reference[name] = max(values) if OBJECTIVES[name][1] < 0 else min(values)
    return Normaliser(objectives, reference, max(float(n.accuracy_scale) for n in normalisers))


def pareto_mask(costs: np.ndarray) -> np.ndarray:
    """True for the rows that no other row dominates (of identical rows, only the first is kept)."""
    costs = np.asarray(costs, dtype=float)
    if len(costs) == 0:
        return np.zeros(0, dtype=bool)
    import moocore

    return np.asarray(moocore.is_nondominated(costs, keep_weakly=False), dtype=bool)


def pareto_ranks(costs: np.ndarray) -> np.ndarray:
    """Non-dominated sorting: 0 for the front, 1 for the front once it is removed, and so on."""
    costs = np.asarray(costs, dtype=float)
    if len(costs) == 0:
        return np.zeros(0, dtype=int)
    import moocore

    return np.asarray(moocore.pareto_rank(costs), dtype=int)


def crowding_distance(costs: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row within its set: boundary rows get infinity."""
    costs = np.asarray(costs, dtype=float)
    n, k = costs.shape
    distance = np.zeros(n)
    if n <= 2:
        distance[:] = np.inf
        return distance
    for j in range(k):
        order = np.argsort(costs[:, j], kind="stable")
        column = costs[order, j]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def hypervolume(costs: np.ndarray, reference: Iterable[float] | None = None) -> float:
    """Hypervolume dominated by `costs` (normalised, minimised) up to `reference` (default all ones);
    rows not strictly better than the reference in every objective add nothing."""
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2 or len(costs) == 0:
        return 0.0
    ref = np.ones(costs.shape[1]) if reference is None else np.asarray(list(reference), dtype=float)
    inside = costs[np.all(costs < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    import moocore

    return float(moocore.hypervolume(inside, ref=ref))
