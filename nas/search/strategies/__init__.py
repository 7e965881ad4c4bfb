"""Search strategies and their registry: ``--strategy`` names one of :data:`STRATEGIES`."""

from __future__ import annotations

from typing import Any

from ...errors import BadInput
from .actions import ActionSearch
from .base import Strategy
from .evolution import Evolution
from .operators import (
    BinaryTournament,
    Crossover,
    Mutation,
    ParetoLocalSearch,
    RankAndCrowding,
    ShrinkRepair,
    SurrogateGuidance,
)
from .optuna import SAMPLERS, OptunaStrategy

#: Strategy name -> class.
STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Evolution, OptunaStrategy, ActionSearch)}
DEFAULT_STRATEGY = "evolution"


def make_strategy(name: str, *, sampler: str = "nsga2", population: int = 50) -> Strategy:
    """The strategy ``--strategy`` names, with the options the command line gives it."""
    if name == "evolution":
        return Evolution(population=population)
    if name == "optuna":
        return OptunaStrategy(sampler, population=population)
    if name == "actions":
        return ActionSearch()
    raise BadInput(f"unknown strategy {name!r} (choose from {', '.join(STRATEGIES)})")


def strategy_options(strategy: Strategy) -> dict[str, Any]:
    """The settings a strategy object implies (``sampler``, ``population``), for the run's record."""
    config = strategy.config()
    return {k: config[k] for k in ("sampler", "population") if k in config}


__all__ = [
    "Strategy",
    "Evolution",
    "OptunaStrategy",
    "ActionSearch",
    "STRATEGIES",
    "SAMPLERS",
    "DEFAULT_STRATEGY",
    "make_strategy",
    "strategy_options",
    "RankAndCrowding",
    "BinaryTournament",
    "Crossover",
    "Mutation",
    "ShrinkRepair",
    "SurrogateGuidance",
    "ParetoLocalSearch",
]
