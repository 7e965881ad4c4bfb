"""The Tune searcher of the Optuna strategy under Ray: it asks the run's own Optuna study for each trial.

Imported only when ``--ray`` runs the Optuna strategy (it needs Ray Tune, an optional extra).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from ray.tune.search import Searcher

#: In the driver: searcher key -> (search context, study, candidate -> record). Tune pickles its searcher
#: (for its experiment state); the run it serves is not picklable, so the searcher holds only its key.
RUNS: dict[str, tuple[Any, Any, Callable[[Any], Any]]] = {}


class StudySearcher(Searcher):
    """A Tune ``Searcher`` that asks the run's study (through the Optuna strategy's sampler) for each
    trial and completes it as ``nas search`` records trials: the candidate and its metrics in user
    attributes, the budgets as constraints, a repeat reusing its accuracy, a shared study's total kept."""

    def __init__(self, key: str):
        super().__init__()
        self.key = key
        self._pending: dict[str, tuple[Any, Any, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pending": {}}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        ctx, study, record = RUNS[self.key]
        asked = ctx.ask(study)
        if asked is None:
            return Searcher.FINISHED
        trial, entry = asked
        done = ctx.store.by_id.get(entry.id)
        self._pending[trial_id] = (trial, entry, done)
        return {"arch": record(entry.candidate), "estimate": entry.feasible and done is None}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        pending = self._pending.pop(trial_id, None)
        if pending is None:
            return
        trial, entry, done = pending
        ctx, study, _ = RUNS[self.key]
        if error or not result:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        problem = ctx.problem
        ctx.executor.count_node(result)
        if done is not None:
            entry = entry.with_accuracy(done.accuracy, done.source).with_extra(duplicate_of=done.number)
        else:
            value = result.get("accuracy")
            entry = entry.with_accuracy(None if value is None else float(value), problem.accuracy_source)
        ctx.store.finish(trial, entry, problem.placeholder_accuracy())
        ctx.report()


__all__ = ["StudySearcher", "RUNS"]
