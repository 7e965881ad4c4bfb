"""Multi-objective evolution with NSGA-II survival, assembled from operator objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import Infeasible
from ...pareto import ACCURACY
from .base import Strategy
from .operators import (
    BinaryTournament,
    Crossover,
    Mutation,
    ParetoLocalSearch,
    RankAndCrowding,
    ShrinkRepair,
    SurrogateGuidance,
)

if TYPE_CHECKING:
    from ..context import SearchContext
    from ..entry import Entry


class Evolution(Strategy):
    """Generational multi-objective evolution over all evaluated candidates.

    Generation 0 is the problem's initial candidates within budget (the space's presets) plus repaired
    random samples. Each later generation is, in order: `guidance`'s share chosen by expected
    hypervolume improvement under a surrogate (from the third generation on), `local_search`'s share
    of what is left, and the rest by `selection` of parents among `survival`'s survivors, `crossover`
    and `mutation`; every child goes through `repair`, so every evaluated candidate is within budget.
    Passing ``guidance=None`` or ``local_search=None`` leaves that part out.
    """

    name = "evolution"
    default_trials = 500

    def __init__(
        self,
        population: int = 50,
        *,
        survival: RankAndCrowding | None = None,
        selection: BinaryTournament | None = None,
        crossover: Crossover | None = None,
        mutation: Mutation | None = None,
        repair: ShrinkRepair | None = None,
        guidance: SurrogateGuidance | None | bool = True,
        local_search: ParetoLocalSearch | None | bool = True,
        max_tries: int = 30,
    ):
        if population < 2:
            raise ValueError(f"population must be at least 2, got {population}")
        self.population, self.max_tries = population, max_tries
        self.survival = survival or RankAndCrowding()
        self.selection = selection or BinaryTournament()
        self.crossover = crossover or Crossover()
        self.mutation = mutation or Mutation()
        self.repair = repair or ShrinkRepair()
        self.guidance = SurrogateGuidance() if guidance is True else (guidance or None)
        self.local_search = ParetoLocalSearch() if local_search is True else (local_search or None)

    def config(self) -> dict[str, Any]:
        def fields(op: Any) -> Any:
            return None if op is None else {k: v for k, v in vars(op).items() if not k.startswith("_")}

        return {
            "population": self.population,
            "max_tries": self.max_tries,
            "crossover": fields(self.crossover),
            "mutation": fields(self.mutation),
            "repair": fields(self.repair),
            "guidance": fields(self.guidance),
            "local_search": fields(self.local_search),
        }

    def run(self, ctx: SearchContext) -> None:
        store = ctx.store
        generations = [e.extra.get("generation") for e in store.entries if e.extra.get("generation") is not None]
        generation = max(generations) if generations else 0  # on resume, replay the last generation
        size = max(2, min(self.population, ctx.trials or self.population))
        while ctx.remaining() > 0:
            history = [e for e in store.entries if e.extra.get("generation", -1) < generation]
            rng = np.random.default_rng([ctx.seed, generation, ctx.salt])
            first = generation == 0 or not any(e.feasible for e in history)
            proposals = self.propose(ctx, history, size, rng, first=first)
            if not proposals:
                ctx.note(f"evolution stopped: no new candidate within budget found after generation {generation}")
                return
            ctx.evaluate([e for e in proposals if e.id not in store.by_id], generation=generation)
            generation += 1

    def propose(self, ctx: SearchContext, history: list[Entry], size: int, rng: np.random.Generator, first: bool) -> list[Entry]:
        """One generation's new candidates (feasible, unseen) from the `history` of earlier generations."""
        problem = ctx.problem
        seen = {e.id for e in history}
        out: list[Entry] = []
        ids: set[str] = set()

        def accept(candidate: Any) -> None:
            fixed = self.repair.apply(problem, candidate, rng) if candidate is not None else None
            if fixed is not None and fixed.id not in seen and fixed.id not in ids:
                ids.add(fixed.id)
                out.append(fixed)

        if first:
            for candidate in problem.initial():  # published designs are good starting points when they fit
                entry = problem.cheap([candidate])[0]
                if entry.feasible and len(out) < size:
                    accept(entry.candidate)
            tries = 0
            while len(out) < size and tries < self.max_tries * size:
                tries += 1
                accept(problem.sample(rng))
            if not out and not history:
                raise Infeasible(
                    f"no candidate within all budgets together ({problem.budget}) was found in {tries} "
                    "random samples repaired by shrinking; each budget alone is achievable, so relax one"
                )
            return out
        feasible = [e for e in history if e.feasible]
        costs = problem.costs(feasible)
        chosen, ranks, crowd = self.survival.select(costs, size)
        parents = [feasible[i].candidate for i in chosen]

        def tournament() -> Any:
            return self.selection.pick(parents, ranks, crowd, rng)

        guided = any(o.key == ACCURACY for o in problem.objectives)
        n_model = self.guidance.count(size, len(feasible), self.population) if self.guidance and guided else 0
        if n_model:
            out.extend(self.guidance.propose(ctx, feasible, costs, n_model, seen, self.mutation, rng))
            ids.update(e.id for e in out)
        n_local = int(round(self.local_search.share * (size - len(out)))) if self.local_search else 0
        if n_local:
            out.extend(self.local_search.propose(ctx, feasible, costs, n_local, seen | ids, rng))
            ids.update(e.id for e in out)
        tries = 0
        while len(out) < size and tries < self.max_tries * size:
            tries += 1
            child = self.crossover.apply(problem, tournament(), tournament, len(parents), rng)
            accept(self.mutation.apply(problem, child, rng))
        return out


__all__ = ["Evolution"]
