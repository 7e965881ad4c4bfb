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

#: The expensive objective's metric: the accuracy estimate, higher is better.
ACCURACY = "accuracy"


@dataclass(frozen=True)
class Objective:
    """One objective: its `name` (as ``--objectives`` spells it), the metric `key` it reads from an
    entry, its `sense` (+1 maximise, -1 minimise), and whether it is the `expensive` (estimated)
    one, which is normalised by the estimator's own scale rather than by a budget."""

    name: str
    key: str
    sense: int
    expensive: bool = False

    @property
    def direction(self) -> str:
        """Optuna's direction."""
        return "maximize" if self.sense > 0 else "minimize"


#: The objectives of the architecture search, by name.
STANDARD_OBJECTIVES: dict[str, Objective] = {
    "accuracy": Objective("accuracy", ACCURACY, +1, expensive=True),
    "latency": Objective("latency", "latency_ms", -1),
    "params": Objective("params", "params", -1),
    "macs": Objective("macs", "macs", -1),
    "mes": Objective("mes", "mes", +1),
}
#: objective name -> (metric key in an entry, +1 to maximise / -1 to minimise), for plots and axes
OBJECTIVES: dict[str, tuple[str, int]] = {name: (o.key, o.sense) for name, o in STANDARD_OBJECTIVES.items()}
DEFAULT_OBJECTIVES = ("accuracy", "latency", "params")
_ALIASES = {"latency_ms": "latency", "size": "params", "parameters": "params", "acc": "accuracy"}


def parse_objectives(text: str | Sequence[str], available: Mapping[str, Objective] | None = None) -> tuple[str, ...]:
    """``"accuracy,latency,params"`` -> a tuple of known, distinct objective names (at least two)."""
    available = STANDARD_OBJECTIVES if available is None else available
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    names = [n if n in available else _ALIASES.get(n.lower(), n.lower()) for n in names]
    for name in names:
        if name not in available:
            raise BadInput(
                f"unknown objective {name!r} (choose from {', '.join(available)}; "
                f"e.g. --objectives {','.join(list(available)[:2])})"
            )
    if len(set(names)) != len(names):
        raise BadInput(f"objectives {','.join(names)}: each may be given once")
    if len(names) < 2:
        raise BadInput(f"objectives {','.join(names) or '(none)'}: a Pareto front needs at least two (e.g. accuracy,latency)")
    return tuple(names)


def direction(name: str) -> str:
    """Optuna's direction for a standard objective."""
    return STANDARD_OBJECTIVES[name].direction


def _records(objectives: Sequence[str | Objective]) -> tuple[Objective, ...]:
    return tuple(o if isinstance(o, Objective) else STANDARD_OBJECTIVES[o] for o in objectives)


class Normaliser:
    """Maps entries to normalised costs (see the module docstring); `reference` holds, per objective
    name, the raw value that normalises to 1 (a budget, the space's largest value, or the estimator's
    worst); `accuracy_scale` is the span of the expensive objective."""

    def __init__(self, objectives: Sequence[str | Objective], reference: Mapping[str, float], accuracy_scale: float = 1.0):
        self.records = _records(objectives)
        self.objectives = tuple(o.name for o in self.records)
        self.reference = {name: float(reference[name]) for name in self.objectives}
        self.accuracy_scale = float(accuracy_scale)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Normaliser)
            and self.records == other.records
            and self.reference == other.reference
            and self.accuracy_scale == other.accuracy_scale
        )

    def __repr__(self) -> str:
        return f"Normaliser({self.objectives}, {self.reference}, {self.accuracy_scale})"

    def costs(self, entries: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(n, k) array of normalised costs; lower is better in every column, 1 is the reference. An
        entry is a mapping of metric keys, or anything with a ``metrics`` mapping (an ``Entry``)."""
        rows = [getattr(e, "metrics", e) for e in entries]
        z = np.empty((len(rows), len(self.records)))
        for j, objective in enumerate(self.records):
            values = np.array([float(r[objective.key]) for r in rows], dtype=float)
            ref = self.reference[objective.name]
            if objective.expensive:
                z[:, j] = 1.0 - (values - ref) / self.accuracy_scale
            elif objective.sense > 0:
                z[:, j] = ref / np.maximum(values, 1e-300)
            else:
                z[:, j] = values / ref
        return z

    def to_dict(self) -> dict[str, float]:
        """The reference point by metric key (``pareto.json``'s ``reference``)."""
        return {o.key: self.reference[o.name] for o in self.records}

    @classmethod
    def from_dict(
        cls, objectives: Sequence[str | Objective], reference_by_key: Mapping[str, float], accuracy_scale: float = 1.0
    ) -> Normaliser:
        """The inverse of :meth:`to_dict` (a run's stored reference)."""
        records = _records(objectives)
        return cls(records, {o.name: reference_by_key[o.key] for o in records}, accuracy_scale)


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
        raise BadInput(
            "the runs' objectives differ ("
            + " vs ".join(",".join(n.objectives) for n in normalisers)
            + "): hypervolumes compare only over the same objectives"
        )
    reference = {}
    for objective in normalisers[0].records:
        values = [float(n.reference[objective.name]) for n in normalisers]
        reference[objective.name] = max(values) if objective.sense < 0 else min(values)
    return Normaliser(normalisers[0].records, reference, max(float(n.accuracy_scale) for n in normalisers))


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
