"""What a search searches: the problem protocol every strategy runs on.

A problem has candidates coded by genes (integer choices), cheap metrics known exactly for any
candidate, one expensive objective (``accuracy``, from an :class:`~nas.estimate.Estimator`) and a
budget of hard limits. Strategies see nothing else, so the EfficientFormerV2 space
(:class:`~nas.search.space.SpaceProblem`) is one implementation, and a user's own problem (a tabular
benchmark: accuracy and latency looked up per encoding) is searched the same way, with every
strategy, front, hypervolume, storage and resume.

A subclass implements :meth:`Problem.genes`, :meth:`Problem.decode`, :meth:`Problem.encode`,
:meth:`Problem.metrics` and sets ``name``, ``objectives``, ``budget``, ``estimator`` and ``reference``.
Variation operators have defaults over the integer encoding (uniform sampling, per-gene mutation,
uniform crossover, one-gene neighbours), which a problem with structure overrides; repair and the
action search use :meth:`Problem.shrink_actions`, empty by default.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search_spaces import Gene
from search_spaces.operators import as_random

from ..budget import Budget
from ..errors import BadInput, Infeasible
from ..pareto import Normaliser, Objective
from .entry import ACCURACY, Entry


class Problem:
    """The problem protocol (see the module docstring). Concrete machinery (cheap evaluation into
    entries, feasibility, normalised costs, repair) is implemented here once, on top of the hooks."""

    #: A name for the problem (stored with a run; the space's reference for the architecture search).
    name: str = "problem"
    #: The Pareto objectives, one of them (``accuracy``) expensive.
    objectives: tuple[Objective, ...] = ()
    #: Hard limits on the cheap metrics.
    budget: Budget = Budget()
    #: The expensive objective's estimator (``estimate``, ``reference``, screening hooks).
    estimator: Any = None
    #: Per cheap objective name, the raw value that normalises to 1 (a budget or the worst value).
    reference: Mapping[str, float] = {}

    # ---- hooks ---------------------------------------------------------------------------------
    def genes(self) -> Sequence[Gene]:
        """The genes, in encoding order."""
        raise NotImplementedError

    def decode(self, codes: Sequence[int]) -> Any:
        """The candidate of an encoding."""
        raise NotImplementedError

    def encode(self, candidate: Any) -> list[int]:
        """The encoding of a candidate (one choice index per gene)."""
        raise NotImplementedError

    def metrics(self, candidates: Sequence[Any]) -> list[dict[str, float]]:
        """The exact cheap metrics of each candidate (every budgeted metric and cheap objective)."""
        raise NotImplementedError

    def key(self, candidate: Any) -> str:
        """A stable id of a candidate (a hash of its encoding by default)."""
        return hashlib.sha1(json.dumps(self.encode(candidate)).encode()).hexdigest()[:12]

    def to_record(self, candidate: Any) -> Any:
        """The candidate as JSON data, as a run stores it (its encoding by default)."""
        return self.encode(candidate)

    def from_record(self, data: Any, where: str = "") -> Any:
        """The inverse of :meth:`to_record`."""
        return self.decode([int(c) for c in data])

    def trial_params(self, candidate: Any) -> dict[str, int]:
        """The genes a run stores as the trial's Optuna parameters (for the dashboard's importance and
        slice plots): every gene's choice index by default."""
        return {gene.name: code for gene, code in zip(self.genes(), self.encode(candidate))}

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """The metric keys of an entry, in the order a result shows them (``accuracy`` last)."""
        keys = [o.key for o in self.objectives if o.key != ACCURACY] + [limit.key for limit in self.budget.limits]
        return tuple(dict.fromkeys(keys)) + (ACCURACY,)

    # ---- variation (defaults over the encoding) --------------------------------------------------
    def initial(self) -> list[Any]:
        """Candidates worth evaluating first (published designs); none by default."""
        return []

    def sample(self, rng: Any) -> Any:
        r = as_random(rng)
        return self.decode([r.randrange(len(g.choices)) for g in self.genes()])

    def mutate(self, candidate: Any, rng: Any, prob: float = 0.1) -> Any:
        """Each gene to another choice with probability `prob`; at least one gene changes."""
        r = as_random(rng)
        genes, codes = self.genes(), list(self.encode(candidate))
        movable = [i for i, g in enumerate(genes) if len(g.choices) > 1]
        if not movable:
            return candidate
        changed = [i for i in movable if r.random() < prob] or [r.choice(movable)]
        for i in changed:
            codes[i] = r.choice([c for c in range(len(genes[i].choices)) if c != codes[i]])
        return self.decode(codes)

    def crossover(self, a: Any, b: Any, rng: Any) -> Any:
        """Each gene from either parent."""
        r = as_random(rng)
        return self.decode([r.choice(pair) for pair in zip(self.encode(a), self.encode(b))])

    def neighbours(self, candidate: Any) -> list[Any]:
        """Every candidate one gene away."""
        codes = self.encode(candidate)
        out = []
        for i, gene in enumerate(self.genes()):
            for c in range(len(gene.choices)):
                if c != codes[i]:
                    out.append(self.decode(codes[:i] + [c] + codes[i + 1 :]))
        return out

    def shrink_actions(self, candidate: Any) -> list[tuple[str, Any]]:
        """Named one-step reductions of a candidate's cost (repair and the action search); none by default."""
        return []

    def start(self) -> Any:
        """Where the action search starts (the largest candidate)."""
        raise BadInput(f"problem {self.name!r} has no starting point for the action search (define start())")

    def efficiency(self, metrics: Mapping[str, float]) -> float:
        """What the action search gains by shrinking (higher is better): by default the negative sum of
        the normalised cheap objectives."""
        normaliser = self.normaliser
        cheap = [o for o in normaliser.records if not o.expensive]
        z = Normaliser(cheap, {o.name: normaliser.reference[o.name] for o in cheap}).costs([metrics])
        return -float(z.sum())

    @property
    def feature_map(self) -> Any:
        """How the evolution's surrogate sees candidates (``codes(candidates)``, ``design(codes)``): the
        genes one-hot by default."""
        cached = getattr(self, "_feature_map", None)
        if cached is None:
            cached = self._feature_map = EncodingFeatures(self)
        return cached

    def best_achievable(self) -> dict[str, float]:
        """The best value any candidate reaches, per metric (for failing fast on an impossible budget);
        unknown metrics are left out (by default all)."""
        return {}

    # ---- evaluation --------------------------------------------------------------------------------
    def cheap(self, candidates: Sequence[Any]) -> list[Entry]:
        """Entries of `candidates` with their cheap metrics, feasibility and violations (no accuracy)."""
        if not candidates:
            return []
        out = []
        for candidate, metrics in zip(candidates, self.metrics(candidates)):
            violations = tuple(self.budget.violations(metrics))
            out.append(Entry(candidate, self.key(candidate), {**metrics, ACCURACY: None}, not violations, violations))
        return out

    def accuracy(self, candidates: Sequence[Any]) -> list[float]:
        return [float(v) for v in self.estimator.estimate(list(candidates))]

    @property
    def accuracy_source(self) -> str:
        return self.estimator.name

    @property
    def accuracy_unit(self) -> str:
        """What the accuracy numbers are: ``top-1 %`` or ``score`` (a proxy's, not a top-1)."""
        return getattr(self.estimator, "unit", "score")

    @property
    def normaliser(self) -> Normaliser:
        """Reference values: per cheap objective :attr:`reference`; for accuracy the estimator's worst."""
        cached = getattr(self, "_normaliser", None)
        if cached is None:
            reference: dict[str, float] = {}
            scale = 1.0
            for objective in self.objectives:
                if objective.expensive:
                    worst, scale = self.estimator.reference()
                    reference[objective.name] = float(worst)
                else:
                    reference[objective.name] = float(self.reference[objective.name])
            cached = self._normaliser = Normaliser(self.objectives, reference, float(scale) if scale > 0 else 1.0)
        return cached

    def costs(self, entries: Sequence[Entry | Mapping[str, Any]]) -> np.ndarray:
        return self.normaliser.costs(entries)

    def placeholder_accuracy(self) -> float:
        """The accuracy Optuna stores for an infeasible trial (which is never estimated): the worst."""
        return float(self.estimator.reference()[0]) if any(o.expensive for o in self.objectives) else 0.0

    def repair(
        self, candidate: Any, rng: np.random.Generator | random.Random, max_steps: int = 200, entry: Entry | None = None
    ) -> Entry | None:
        """Shrink an over-budget candidate until it fits: each step takes one of the shrinking actions,
        drawn with probability proportional to how much over-budget excess it removes. Returns the
        feasible entry, or None when `max_steps` steps (or the actions) do not reach the budget."""
        current = entry or self.cheap([candidate])[0]
        for _ in range(max_steps):
            if current.feasible:
                return current
            actions = self.shrink_actions(current.candidate)
            if not actions:
                return None
            candidates = self.cheap([c for _, c in actions])
            before = self.budget.excess(current.metrics)
            gains = np.array([before - self.budget.excess(c.metrics) for c in candidates])
            if gains.max() <= 0:
                return None
            weights = np.clip(gains, 0, None)
            current = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
        return current if current.feasible else None

    def check_feasible(self) -> None:
        """Raise Infeasible (exit 3) when even the best achievable value of a budgeted metric misses it."""
        problems = self.budget.unmet(self.best_achievable())
        if problems:
            raise Infeasible(f"no candidate of {self.name!r} can meet " + "; ".join(problems))


class EncodingFeatures:
    """A problem's candidates as one-hot genes (the surrogate features of a problem of one's own)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self._memo: dict[str, list[int]] = {}

    def codes(self, candidates: Sequence[Any]) -> np.ndarray:
        """The integer encodings (memoised by candidate id: a search encodes the same ones again and again)."""
        memo, problem = self._memo, self.problem
        for c in candidates:
            key = problem.key(c)
            if key not in memo:
                memo[key] = problem.encode(c)
        return np.array([memo[problem.key(c)] for c in candidates], dtype=np.int64).reshape(len(candidates), len(problem.genes()))

    def design(self, codes: np.ndarray) -> np.ndarray:
        codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
        return np.concatenate([np.eye(len(g.choices))[codes[:, i]] for i, g in enumerate(self.problem.genes())], axis=1)


__all__ = ["Problem", "EncodingFeatures"]
