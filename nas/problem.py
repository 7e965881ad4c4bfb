"""What a search optimises: cheap metrics (vectorised), budgets, and the accuracy estimate.

Cheap metrics of many architectures come at once from the space's per-gene cost tables (parameters,
MACs) and the device table (latency), which are the same per-layer sums that ``supernet.count`` and
``LUT.predict`` compute. Accuracy is estimated only for architectures within the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from search_spaces import Arch, Space

from .budget import Budget
from .mes import mes
from .pareto import Normaliser


class Problem:
    """A space scored on one device under a budget, with one accuracy estimator."""

    def __init__(self, space: Space, lut: Any, budget: Budget, estimator: Any, objectives: Sequence[str],
                 mes_alpha: dict[str, float] | None = None, mes_unit: dict[str, float] | None = None):
        import supernet

        self.space, self.lut, self.budget, self.estimator = space, lut, budget, estimator
        self.objectives = tuple(objectives)
        self.mes_alpha, self.mes_unit = dict(mes_alpha or {}), dict(mes_unit or {})
        counts = supernet.count_tables(space)
        self._params, self._macs = counts["params"], counts["macs"]
        self._normaliser: Normaliser | None = None

    # ---- cheap metrics -------------------------------------------------------------------------
    def cheap(self, archs: Sequence[Arch]) -> list[dict[str, Any]]:
        """params, macs, latency_ms, mes, feasible and violations of each architecture."""
        if not archs:
            return []
        codes = np.array([self.space.encode(a) for a in archs])
        params = self._params.total(codes)[0]
        macs = self._macs.total(codes)[0]
        latency = self.lut.predict_codes(codes, self.space)
        scores = np.atleast_1d(mes(params, latency, self.mes_alpha, self.mes_unit))
        out = []
        for i, arch in enumerate(archs):
            metrics = {"arch": arch, "arch_id": arch.id, "params": int(round(params[i])), "macs": int(round(macs[i])),
                       "latency_ms": float(latency[i]), "mes": float(scores[i])}
            metrics["violations"] = self.budget.violations(metrics)
            metrics["feasible"] = not metrics["violations"]
            out.append(metrics)
        return out

    def excess(self, metrics: dict[str, Any]) -> float:
        """How far over budget, summed over metrics as fractions of each limit (0 when feasible)."""
        b = self.budget
        total = 0.0
        for name in ("params", "macs", "latency_ms"):
            limit = getattr(b, name)
            if limit is not None:
                total += max(0.0, metrics[name] / limit - 1.0)
        if b.mes is not None:
            total += max(0.0, b.mes / metrics["mes"] - 1.0)
        return total

    def constraint_values(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Optuna's constraints: per budgeted metric, the relative excess (<= 0 when the budget holds)."""
        b, out = self.budget, {}
        for name in ("params", "macs", "latency_ms"):
            limit = getattr(b, name)
            if limit is not None:
                out[name] = metrics[name] / limit - 1.0
        if b.mes is not None:
            out["mes"] = b.mes / metrics["mes"] - 1.0
        return out

    # ---- accuracy --------------------------------------------------------------------------------
    @property
    def accuracy_source(self) -> str:
        return self.estimator.name

    def accuracy(self, archs: Sequence[Arch]) -> list[float]:
        return [float(v) for v in self.estimator.estimate(list(archs))]

    def complete(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The entry of one architecture: its cheap metrics plus, when within budget, its accuracy."""
        entry = dict(metrics)
        entry["accuracy"] = self.accuracy([metrics["arch"]])[0] if metrics["feasible"] else None
        entry["accuracy_source"] = self.accuracy_source
        return entry

    # ---- normalisation -------------------------------------------------------------------------
    @property
    def normaliser(self) -> Normaliser:
        """Reference values: each budget, else the space's largest architecture; the estimator's worst."""
        if self._normaliser is None:
            largest = self.cheap([self.space.largest()])[0]
            reference: dict[str, float] = {}
            scale = 1.0
            for name in self.objectives:
                if name == "accuracy":
                    worst, scale = self.estimator.reference()
                    reference[name] = float(worst)
                elif name == "mes":
                    reference[name] = float(self.budget.mes if self.budget.mes is not None else largest["mes"])
                else:
                    key = {"latency": "latency_ms"}.get(name, name)
                    limit = getattr(self.budget, key)
                    reference[name] = float(limit if limit is not None else largest[key])
            self._normaliser = Normaliser(self.objectives, reference, float(scale) if scale > 0 else 1.0)
        return self._normaliser

    def costs(self, entries: Sequence[dict[str, Any]]) -> np.ndarray:
        return self.normaliser.costs(entries)

    def placeholder_accuracy(self) -> float:
        """The accuracy Optuna stores for an infeasible trial (which is never estimated): the worst."""
        return float(self.estimator.reference()[0]) if "accuracy" in self.objectives else 0.0

    # ---- repair ----------------------------------------------------------------------------------
    def repair(self, arch: Arch, rng: np.random.Generator, max_steps: int = 200,
               metrics: dict[str, Any] | None = None) -> tuple[Arch, dict[str, Any]] | None:
        """Shrink an over-budget architecture until it fits: each step takes one of the space's shrinking
        actions, drawn with probability proportional to how much over-budget excess it removes.
        Returns (arch, metrics), or None when `max_steps` steps do not reach the budget."""
        current = metrics or self.cheap([arch])[0]
        for _ in range(max_steps):
            if current["feasible"]:
                return current["arch"], current
            actions = self.space.shrink_actions(current["arch"])
            if not actions:
                return None
            candidates = self.cheap([a for _, a in actions])
            before = self.excess(current)
            gains = np.array([before - self.excess(c) for c in candidates])
            if gains.max() <= 0:
                return None
            weights = np.clip(gains, 0, None)
            current = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
        return (current["arch"], current) if current["feasible"] else None
