"""The search: strategies over a problem, budgets as hard limits, every trial in an Optuna study, the
Pareto front and its hypervolume.

``nas.search(space, budget=..., ...)`` runs one (see :func:`nas.search.driver.search`): this package is
itself callable, so the README's ``nas.search(...)`` and ``from nas.search import SearchSettings`` both
work. Its modules: ``settings`` (:class:`SearchSettings`), ``problem`` (the protocol strategies run on)
and ``space`` (the architecture search's implementation), ``entry`` (the typed trial record),
``context`` (what a strategy sees), ``strategies`` (evolution, Optuna, actions, and their operators),
``surrogate``, ``runs`` (run files and storage), ``result``, ``refs`` (``RUN_DIR#N`` and ``--pick``),
``plots``, ``ray_tune``.
"""

from __future__ import annotations

from ..callable_module import make_callable
from .driver import resumed_settings_of, search
from .entry import ACCURACY, Entry
from .problem import Problem
from .refs import pick_entry, resolve, resolve_arch, run_entry
from .result import SearchResult, compare_runs, front
from .runs import load_run, load_run_settings, run_result
from .settings import DEFAULT_STUDY, SearchSettings
from .space import SpaceProblem
from .strategies import STRATEGIES, ActionSearch, Evolution, OptunaStrategy, Strategy, make_strategy

make_callable(__name__, search)

__all__ = [
    "search",
    "SearchSettings",
    "SearchResult",
    "Problem",
    "SpaceProblem",
    "Entry",
    "ACCURACY",
    "Strategy",
    "Evolution",
    "OptunaStrategy",
    "ActionSearch",
    "STRATEGIES",
    "make_strategy",
    "front",
    "compare_runs",
    "run_result",
    "load_run",
    "load_run_settings",
    "resolve",
    "resolve_arch",
    "run_entry",
    "pick_entry",
    "resumed_settings_of",
    "DEFAULT_STUDY",
]
