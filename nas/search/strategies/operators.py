"""The evolution's operators, each an object with its own settings (as pymoo's algorithms are
assembled from sampling, crossover, mutation, repair and survival objects), so every knob can be set
and tested on its own.

Only accuracy is expensive: every other objective of any candidate is known exactly before it is
evaluated. Two operators use that. :class:`SurrogateGuidance` picks most of each generation from a
large pool of candidates near the front by expected hypervolume improvement under an accuracy
surrogate refitted on all trials so far (:mod:`nas.search.strategies.surrogate`); :class:`ParetoLocalSearch`
screens one-gene neighbours of the front on their exact cheap objectives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...pareto import ACCURACY, crowding_distance, pareto_mask, pareto_ranks
from .surrogate import RidgeSurrogate, expected_improvement_batch

if TYPE_CHECKING:
    from ..context import SearchContext
    from ..entry import Entry
    from ..problem import Problem


@dataclass
class RankAndCrowding:
    """NSGA-II survival: whole non-dominated fronts in order, the last one cut by crowding distance."""

    def select(self, costs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The chosen row indices and, for them, their front rank and crowding distance."""
        n = len(costs)
        ranks = pareto_ranks(costs)
        chosen, crowd = [], []
        for rank in np.unique(ranks):
            idx = np.flatnonzero(ranks == rank)
            distance = crowding_distance(costs[idx])
            if len(chosen) + len(idx) > k:
                order = np.argsort(-distance, kind="stable")[: k - len(chosen)]
                idx, distance = idx[order], distance[order]
            chosen.extend(idx.tolist())
            crowd.extend(distance.tolist())
            if len(chosen) >= k:
                break
        chosen_arr = np.array(chosen[:n], dtype=int)
        return chosen_arr, ranks[chosen_arr], np.array(crowd[: len(chosen_arr)])


@dataclass
class BinaryTournament:
    """Two parents drawn at random; the better rank wins, then the larger crowding distance."""

    def pick(self, parents: Sequence[Any], ranks: np.ndarray, crowd: np.ndarray, rng: np.random.Generator) -> Any:
        a, b = rng.integers(len(parents), size=2)
        if (ranks[a], -crowd[a]) <= (ranks[b], -crowd[b]):
            return parents[a]
        return parents[b]


@dataclass
class Crossover:
    """With probability `prob`, the child of two parents (the problem's crossover: for architectures,
    whole stages' depth and width and each block from either parent); else the first parent."""

    prob: float = 0.9

    def apply(self, problem: Problem, first: Any, second: Callable[[], Any], n_parents: int, rng: np.random.Generator) -> Any:
        if n_parents > 1 and rng.random() < self.prob:
            return problem.crossover(first, second(), rng)
        return first


@dataclass
class Mutation:
    """The problem's mutation with per-gene probability `prob` (architectures: blocks added or dropped,
    widths and ratios to neighbouring choices, mixers swapped; never the parent itself)."""

    prob: float = 0.1

    def apply(self, problem: Problem, candidate: Any, rng: np.random.Generator) -> Any:
        return problem.mutate(candidate, rng, self.prob)


@dataclass
class ShrinkRepair:
    """An over-budget candidate shrunk by the problem's shrinking actions until it fits (each step drawn
    with probability proportional to the excess it removes), or dropped after `max_steps`."""

    max_steps: int = 200

    def apply(self, problem: Problem, candidate: Any, rng: np.random.Generator) -> Entry | None:
        return problem.repair(candidate, rng, self.max_steps)


@dataclass
class SurrogateGuidance:
    """Most of each generation (`share`), once `warmup` feasible trials are in (default two generations),
    chosen by expected hypervolume improvement under an accuracy surrogate fitted on every feasible trial.

    The pool: every one-gene neighbour of the front's members, and `pool_children` children per member
    (crossover of two members, then mutation); those over budget are left out. The surrogate's
    leave-one-out error is the spread of each prediction, expected over `quantiles` Gaussian quantiles;
    `slack` lets the lazy greedy take a candidate within that fraction of the best bound.
    """

    share: float = 0.8
    warmup: int | None = None
    pool_children: int = 6
    quantiles: int = 5
    slack: float = 0.05
    _metrics: dict[str, Entry] = field(default_factory=dict, repr=False)  # cheap entries of pool candidates
    _neighbours: dict[str, list[Any]] = field(default_factory=dict, repr=False)  # of front members
    _surrogate: Any = field(default=None, repr=False)  # refitted every generation; holds the encoding memo

    def count(self, size: int, feasible: int, population: int) -> int:
        warmup = 2 * population if self.warmup is None else self.warmup
        return int(round(self.share * size)) if feasible >= warmup else 0

    def propose(
        self,
        ctx: SearchContext,
        feasible: list[Entry],
        costs: np.ndarray,
        n: int,
        seen: set[str],
        mutation: Mutation,
        rng: np.random.Generator,
    ) -> list[Entry]:
        problem = ctx.problem
        a = problem.objectives.index(next(o for o in problem.objectives if o.key == ACCURACY))
        on_front = pareto_mask(costs)
        members = [feasible[i] for i in np.flatnonzero(on_front)]
        # the caches keep only what this generation uses: front members mostly stay from one to the next
        self._neighbours = {m.id: self._neighbours.get(m.id) or problem.neighbours(m.candidate) for m in members}
        pool: dict[str, Any] = {}
        for m in members:
            for candidate in self._neighbours[m.id]:
                key = problem.key(candidate)
                if key not in seen:
                    pool.setdefault(key, candidate)
        for _ in range(self.pool_children * len(members)):
            x, y = rng.integers(len(members), size=2)
            child = mutation.apply(problem, problem.crossover(members[x].candidate, members[y].candidate, rng), rng)
            key = problem.key(child)
            if key not in seen:
                pool.setdefault(key, child)
        new = [c for key, c in pool.items() if key not in self._metrics]
        cache = self._metrics = {key: self._metrics[key] for key in pool if key in self._metrics}
        cache.update((e.id, e) for e in problem.cheap(new))
        metrics = [cache[key] for key in pool if cache[key].feasible]
        if not metrics:
            return []
        if self._surrogate is None:
            self._surrogate = RidgeSurrogate(problem.feature_map)
        surrogate = self._surrogate
        surrogate.fit(surrogate.features.codes([e.candidate for e in feasible]), [e.accuracy for e in feasible])
        predicted = surrogate.predict(surrogate.features.codes([e.candidate for e in metrics]))
        cand = problem.costs([{**e.metrics, ACCURACY: float(p)} for e, p in zip(metrics, predicted)])
        spread = np.full(len(metrics), surrogate.sigma / problem.normaliser.accuracy_scale)
        picks = expected_improvement_batch(costs[on_front], cand, spread, a, n, self.quantiles, self.slack)
        return [metrics[i] for i in picks]


@dataclass
class ParetoLocalSearch:
    """A share (`share`) of the rest of each generation: one unseen feasible one-gene neighbour for each
    of the front's members.

    The cheap objectives of every neighbour are known exactly, so each is screened without any accuracy
    model: its chance of joining the front is scored by how far its parent's accuracy (a neighbour's
    accuracy is close to it) exceeds the best accuracy among evaluated candidates at least as cheap in
    every other objective. For a share (`screen_share`) of the members the best-scored neighbour is
    proposed, for the others a random one (greedy screening alone explores too little).
    """

    share: float = 0.8
    screen_share: float = 0.5

    def propose(
        self, ctx: SearchContext, feasible: list[Entry], costs: np.ndarray, n: int, seen: set[str], rng: np.random.Generator
    ) -> list[Entry]:
        problem = ctx.problem
        objectives = problem.objectives
        members = [feasible[i] for i in np.flatnonzero(pareto_mask(costs))]
        per_member, flat, taken = [], [], set()
        for i in rng.permutation(len(members)):
            options = [
                c for c in problem.neighbours(members[i].candidate) if problem.key(c) not in seen and problem.key(c) not in taken
            ]
            taken.update(problem.key(c) for c in options)
            per_member.append((members[i], len(flat), len(flat) + len(options)))
            flat.extend(options)
        if not flat:
            return []
        metrics = problem.cheap(flat)
        ok = np.array([e.feasible for e in metrics])
        score = rng.random(len(flat)) * 1e-9  # ties broken at random
        keys = [o.key for o in objectives]
        if ACCURACY in keys and len(objectives) > 1:
            a = keys.index(ACCURACY)
            cheap_cols = [j for j in range(len(objectives)) if j != a]
            cand = problem.costs([{**e.metrics, ACCURACY: 0.0} for e in metrics])[:, cheap_cols]
            known = costs[:, cheap_cols]
            known_acc = -costs[:, a]  # normalised accuracy, higher is better
            best_below = np.full(len(flat), -np.inf)
            for start in range(0, len(flat), 2048):
                block = cand[start : start + 2048]
                covers = np.all(known[None, :, :] <= block[:, None, :], axis=2)
                best_below[start : start + 2048] = np.where(covers, known_acc[None, :], -np.inf).max(axis=1)
            member_acc = {id(m): -problem.costs([m])[0, a] for m, _, _ in per_member}
            for m, lo, hi in per_member:
                score[lo:hi] += member_acc[id(m)] - np.maximum(best_below[lo:hi], -1e9)
        out = []
        for _m, lo, hi in per_member:
            if len(out) >= n:
                break
            idx = [j for j in range(lo, hi) if ok[j]]
            if idx:
                pick = max(idx, key=lambda j: score[j]) if rng.random() < self.screen_share else idx[int(rng.integers(len(idx)))]
                out.append(metrics[pick])
        return out


__all__ = [
    "RankAndCrowding",
    "BinaryTournament",
    "Crossover",
    "Mutation",
    "ShrinkRepair",
    "SurrogateGuidance",
    "ParetoLocalSearch",
]
