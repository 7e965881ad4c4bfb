"""Optuna's samplers over the integer encoding, with the budgets as Optuna constraints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import BadInput
from .base import Strategy

if TYPE_CHECKING:
    from ..context import SearchContext

SAMPLERS = ("nsga2", "nsga3", "tpe", "gp", "random")


class OptunaStrategy(Strategy):
    """One of Optuna's samplers over the candidate's integer encoding (one integer parameter per gene,
    named as the gene), asked and told through the run's own study; the budgets are Optuna constraints
    (a positive value is a violation), so constraint-aware samplers (NSGA-II/III, TPE, GP) avoid them."""

    name = "optuna"
    default_trials = 500

    def __init__(self, sampler: str = "nsga2", population: int = 50):
        if sampler not in SAMPLERS:
            raise BadInput(f"unknown sampler {sampler!r} (choose from {', '.join(SAMPLERS)})")
        self.sampler_name, self.population = sampler, population

    def config(self) -> dict[str, Any]:
        return {"sampler": self.sampler_name, "population": self.population}

    def make_sampler(self, seed: int) -> Any:
        """The sampler by name; those that handle constraints read them from each trial (``set_constraint``)."""
        import optuna

        size = max(2, self.population)
        if self.sampler_name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=size, seed=seed)
        if self.sampler_name == "nsga3":
            return optuna.samplers.NSGAIIISampler(population_size=size, seed=seed)
        if self.sampler_name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        if self.sampler_name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    def run(self, ctx: SearchContext) -> None:
        # Re-seeded by what is already stored, so a resumed run is reproducible from its kill point.
        sampler = self.make_sampler(ctx.seed + 7919 * ctx.store.evaluated + ctx.salt)
        if ctx.executor is not None:
            ctx.executor.run_study(ctx, sampler)  # Ray Tune asks the same study, a trial per free worker
            return
        study = ctx.store.study_with(sampler)
        while ctx.remaining() > 0:
            asked = []
            for _ in range(min(ctx.batch_size, ctx.remaining())):
                pending = ctx.ask(study)
                if pending is None:
                    break
                asked.append(pending)
            if not asked:
                return
            ctx.finish_trials(asked)


__all__ = ["OptunaStrategy", "SAMPLERS"]
