"""The architecture search as a problem: a search space scored on one device under a budget.

Cheap metrics of many architectures come at once from the space's per-gene cost tables (parameters,
MACs) and the device table (latency), which are the same per-layer sums that ``supernet.count`` and
``LUT.predict`` compute; MES follows from them. Accuracy is estimated only for architectures within
the budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import supernet
from search_spaces import Arch, Gene, Space

from ..budget import Budget, check_feasible
from ..estimate import Features
from ..mes import mes
from ..pareto import STANDARD_OBJECTIVES, Objective
from .problem import Problem


class SpaceProblem(Problem):
    """A space scored on one device (its latency table) under a budget, with one accuracy estimator."""

    def __init__(
        self,
        space: Space,
        lut: Any,
        budget: Budget,
        estimator: Any,
        objectives: Sequence[str | Objective],
        mes_alpha: Mapping[str, float] | None = None,
        mes_unit: Mapping[str, float] | None = None,
    ):
        self.space, self.lut, self.budget, self.estimator = space, lut, budget, estimator
        self.name = space.ref
        self.objectives = tuple(o if isinstance(o, Objective) else STANDARD_OBJECTIVES[o] for o in objectives)
        self.mes_alpha, self.mes_unit = dict(mes_alpha or {}), dict(mes_unit or {})
        counts = supernet.count_tables(space)
        self._params, self._macs = counts["params"], counts["macs"]
        self._features: Features | None = None

    # ---- the protocol ----------------------------------------------------------------------------
    def genes(self) -> list[Gene]:
        return self.space.genes()

    def decode(self, codes: Sequence[int]) -> Arch:
        return self.space.decode(codes)

    def encode(self, arch: Arch) -> list[int]:
        return self.space.encode(arch)

    def key(self, arch: Arch) -> str:
        return arch.id

    def trial_params(self, arch: Arch) -> dict[str, int]:
        """The genes of the architecture's layout (resolution, and each stage's depth and width) as Optuna
        parameters, so the dashboard's importance and slice plots show them. Block genes are left out:
        their number varies with the depths (Optuna's importance uses only the parameters every trial
        shares), and each parameter costs the storage about a millisecond to write (all 51 genes in use of
        a typical architecture of the default space made the README's search 37% slower; these 9, 12%)."""
        return {gene.name: code for gene, code in zip(self.space.genes(), self.space.encode(arch)) if gene.block is None}

    def to_record(self, arch: Arch) -> dict[str, Any]:
        return arch.to_dict()

    def from_record(self, data: Any, where: str = "") -> Arch:
        return Arch.from_dict(data, source=where or "architecture")

    @property
    def metric_keys(self) -> tuple[str, ...]:
        return ("params", "macs", "latency_ms", "mes", "accuracy")

    def metrics(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """params, macs, latency_ms and mes of each architecture, vectorised over their encodings."""
        codes = np.array([self.space.encode(a) for a in archs])
        return self.metrics_of_codes(codes)

    def metrics_of_codes(self, codes: np.ndarray) -> list[dict[str, float]]:
        params = self._params.total(codes)[0]
        macs = self._macs.total(codes)[0]
        latency = self.lut.predict_codes(codes, self.space)
        scores = np.atleast_1d(mes(params, latency, self.mes_alpha, self.mes_unit))
        return [
            {
                "params": int(round(params[i])),
                "macs": int(round(macs[i])),
                "latency_ms": float(latency[i]),
                "mes": float(scores[i]),
            }
            for i in range(len(codes))
        ]

    @property
    def reference(self) -> dict[str, float]:
        """Each budget, else the space's largest architecture's value (the worst)."""
        cached = getattr(self, "_reference", None)
        if cached is None:
            largest = self.metrics([self.space.largest()])[0]
            cached = self._reference = {}
            for objective in self.objectives:
                if not objective.expensive:
                    limit = self.budget.get(objective.key)
                    cached[objective.name] = float(limit if limit is not None else largest[objective.key])
        return cached

    # ---- variation: the space's structure-aware operators ----------------------------------------------
    def initial(self) -> list[Arch]:
        return [self.space.preset(name) for name in self.space.preset_names]

    def sample(self, rng: Any) -> Arch:
        return self.space.sample(rng)

    def mutate(self, arch: Arch, rng: Any, prob: float = 0.1) -> Arch:
        return self.space.mutate(arch, rng, prob=prob)

    def crossover(self, a: Arch, b: Arch, rng: Any) -> Arch:
        return self.space.crossover(a, b, rng)

    def neighbours(self, arch: Arch) -> list[Arch]:
        return self.space.neighbours(arch)

    def shrink_actions(self, arch: Arch) -> list[tuple[str, Arch]]:
        return self.space.shrink_actions(arch)

    def start(self) -> Arch:
        return self.space.largest()

    def efficiency(self, metrics: Mapping[str, float]) -> float:
        """EfficientFormerV2's search trades accuracy against the Mobile Efficiency Score."""
        return float(metrics["mes"])

    @property
    def feature_map(self) -> Features:
        """Genes in use, log counts (and, in the surrogate's design, their squares and product)."""
        if self._features is None:
            self._features = Features(self.space)
        return self._features

    def check_feasible(self) -> None:
        check_feasible(self.budget, self.space, self.lut, self.mes_alpha, self.mes_unit)


__all__ = ["SpaceProblem"]
