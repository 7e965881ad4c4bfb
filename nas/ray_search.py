"""Accuracy evaluations as Ray Tune trials, on a local Ray instance (loopback) or a user's cluster.

Evolution and the action search stay in the driver: each batch of architectures they hand over (a
generation, one step of the action search) becomes one Tune experiment with one trial per
architecture. The Optuna strategy runs as one Tune experiment driven by Tune's ``OptunaSearch`` over
the run's own study (the same storage, sampler and constraints as without Ray), so Tune schedules
trials as workers free up. Workers build the accuracy estimator once per process from a picklable
factory, so a proxy's network or a supernet checkpoint is loaded once per worker, not once per trial.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from search_spaces import Arch

from .errors import BadInput

_ESTIMATORS: dict[int, Any] = {}  # per worker process: factory key -> estimator


def _evaluate(config: dict[str, Any], factory: Callable[[], Any], key: int) -> dict[str, Any]:
    """One Tune trial: the accuracy of ``config["arch"]``, unless the driver says it is not needed
    (over budget, or already evaluated)."""
    arch = Arch.from_dict(config["arch"])
    out = dict(config.get("report", {}), arch_id=arch.id)  # Tune checks that every objective is reported
    if not config.get("estimate", True):
        return dict(out, accuracy=None)
    estimator = _ESTIMATORS.get(key)
    if estimator is None:
        estimator = _ESTIMATORS[key] = factory()
    return dict(out, accuracy=float(estimator.estimate([arch])[0]))


class RayExecutor:
    """``map(archs) -> accuracies`` through Ray Tune."""

    def __init__(self, factory: Callable[[], Any], address: str | None = None, num_cpus: int | None = None):
        try:
            import ray
            from ray import tune  # noqa: F401
        except ImportError:
            raise BadInput("--ray needs Ray Tune: pip install 'nas-mobile-vit[ray]'") from None
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        self._started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
                else:
                    ray.init(include_dashboard=False, num_cpus=num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1",
                             log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise BadInput(f"--ray {address or ''}: cannot start or reach Ray ({str(exc).splitlines()[0]})") from None
            self._started = True
        self.factory = factory
        self.key = id(factory)
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._dir = tempfile.mkdtemp(prefix="nas-ray-")
        self._round = 0

    def map(self, archs: Sequence[Arch]) -> list[float]:
        from ray import tune

        if not archs:
            return []
        self._round += 1
        trainable = tune.with_parameters(_evaluate, factory=self.factory, key=self.key)
        tuner = tune.Tuner(
            trainable,
            param_space={"arch": tune.grid_search([a.to_dict() for a in archs])},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(name=f"batch{self._round}", storage_path=self._dir, verbose=0,
                                      log_to_file=False),
        )
        results = tuner.fit()
        accuracy: dict[str, float] = {}
        for result in results:
            if result.error is not None:
                raise RuntimeError(f"a Ray Tune evaluation failed: {result.error}")
            accuracy[result.metrics["arch_id"]] = result.metrics["accuracy"]
        return [accuracy[a.id] for a in archs]

    def optuna_search(self, ctx: Any, sampler: Any) -> None:
        """Run the Optuna strategy as one Tune experiment: Tune's OptunaSearch asks `sampler` for trials of
        the run's study, the driver checks each architecture's budget (constraints) and records it."""
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter

        remaining = ctx.remaining()
        if remaining <= 0:
            return
        self._round += 1
        searcher = _run_study_searcher(ctx, sampler)
        trainable = tune.with_parameters(_evaluate, factory=self.factory, key=self.key)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=self.parallelism),
                                        num_samples=remaining, reuse_actors=True),
            run_config=tune.RunConfig(name=f"optuna{self._round}", storage_path=self._dir, verbose=0, log_to_file=False),
        )
        for result in tuner.fit():
            if result.error is not None:
                raise RuntimeError(f"a Ray Tune evaluation failed: {result.error}")

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._started:
            import ray

            ray.shutdown()


def _run_study_searcher(ctx: Any, sampler: Any) -> Any:
    """Tune's OptunaSearch over the run's study, completing each trial as ``nas search`` records trials:
    the architecture and its metrics in user attributes, the budgets as constraints, a repeat of an
    evaluated architecture reusing its accuracy, and a shared study's total kept exactly."""
    import optuna
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    from .pareto import direction
    from .runs import WORKER_KEY, attrs_of

    problem, store = ctx.problem, ctx.store
    genes = problem.space.genes()
    space = {name: optuna.distributions.IntDistribution(0, len(choices) - 1) for name, choices in genes}

    class RunStudySearch(OptunaSearch):
        def __init__(self) -> None:
            super().__init__(space=space, metric=list(store.objectives),
                             mode=["max" if direction(o) == "maximize" else "min" for o in store.objectives],
                             sampler=sampler, study_name=store.study_name, storage=store.storage)
            self._metrics: dict[str, dict[str, Any]] = {}

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            params = super().suggest(trial_id)
            trial = self._ot_trials[trial_id]
            trial.set_user_attr(WORKER_KEY, ctx.worker)
            if ctx.shared and store.claimed_before(trial.number) >= ctx.trials:
                trial.set_user_attr("surplus", True)
                self._ot_study.tell(trial, state=optuna.trial.TrialState.FAIL)
                self._completed_trials.add(trial_id)
                return Searcher.FINISHED
            metrics = problem.cheap([problem.space.decode([params[name] for name, _ in genes])])[0]
            for name, value in problem.constraint_values(metrics).items():
                trial.set_constraint(name, value)
            done = store.by_id.get(metrics["arch_id"])
            if done is not None:
                metrics.update(accuracy=done["accuracy"], duplicate_of=done["number"], accuracy_source=done["accuracy_source"])
            self._metrics[trial_id] = metrics
            cheap = dict(zip(store.objectives, store.values_of(metrics, problem.placeholder_accuracy())))
            cheap.pop("accuracy", None)
            return {"arch": metrics["arch"].to_dict(), "estimate": metrics["feasible"] and done is None, "report": cheap}

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            metrics = self._metrics.pop(trial_id, None)
            if metrics is None or not result or error:
                super().on_trial_complete(trial_id, None, error=True)
                return
            entry = dict(metrics)
            if "duplicate_of" not in entry:
                entry["accuracy"] = result.get("accuracy")
                entry["accuracy_source"] = problem.accuracy_source
            for key, value in attrs_of(entry).items():
                self._ot_trials[trial_id].set_user_attr(key, value)
            values = store.values_of(entry, problem.placeholder_accuracy())
            super().on_trial_complete(trial_id, dict(zip(store.objectives, values)))
            store.refresh()
            ctx.report()

    return RunStudySearch()
