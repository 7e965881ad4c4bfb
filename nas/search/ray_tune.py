"""Accuracy evaluations as Ray Tune trials, on a local Ray instance (loopback) or a user's cluster.

Evolution and the action search stay in the driver: each batch of candidates they hand over (a
generation, one step of the action search) becomes one Tune experiment with one trial per candidate.
The Optuna strategy runs as one Tune experiment whose searcher (``ray_searcher.StudySearcher``, a
plain Tune ``Searcher``) asks the run's own Optuna study for each trial and tells it the result, with the same
storage, sampler and constraints as without Ray, so Tune starts a trial whenever a worker frees up.
Workers build the accuracy estimator once per process from a picklable factory, so a proxy's network
or a supernet checkpoint is loaded once per worker, not once per trial.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from search_spaces.errors import first_line
from search_spaces.provenance import require_extra

from ..errors import BadInput

_ESTIMATORS: dict[str, Any] = {}  # per worker process: factory key -> estimator


def _evaluate(config: dict[str, Any], factory: Callable[[], Any], key: str, decode: Callable[[Any], Any]) -> dict[str, Any]:
    """One Tune trial: the accuracy of the candidate ``config["arch"]``, unless the driver says it is not
    needed (over budget, or already evaluated)."""
    import ray

    config = config.get("cfg", config)  # a batch's grid wraps each candidate's config
    node = ray.get_runtime_context().get_node_id()  # which node did the work, for the run's record
    if not config.get("estimate", True):
        return {"index": config.get("index"), "accuracy": None, "node": node}
    estimator = _ESTIMATORS.get(key)
    if estimator is None:
        estimator = _ESTIMATORS[key] = factory()
    return {"index": config.get("index"), "accuracy": float(estimator.estimate([decode(config["arch"])])[0]), "node": node}


def require_ray() -> None:
    """Ray Tune or a one-line hint (before any work or file is written)."""
    require_extra("ray.tune", "--ray", "ray", BadInput)


class RayExecutor:
    """``map(candidates) -> accuracies`` through Ray Tune (see the module docstring)."""

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        record: Callable[[Any], Any],
        decode: Callable[[Any], Any],
        address: str | None = None,
        num_cpus: int | None = None,
    ):
        require_ray()
        import ray

        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        self._started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
                else:
                    ray.init(
                        include_dashboard=False,
                        num_cpus=num_cpus or os.cpu_count(),
                        _node_ip_address="127.0.0.1",
                        log_to_driver=False,
                        logging_level="ERROR",
                    )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise BadInput(f"--ray {address or ''}: cannot start or reach Ray ({first_line(exc)})") from None
            self._started = True
        self.factory, self.record, self.decode = factory, record, decode
        self.key = uuid.uuid4().hex  # this executor's estimator in every worker's cache (stable, never reused)
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._dir = tempfile.mkdtemp(prefix="nas-ray-")
        self._round = 0
        self.nodes: dict[str, int] = {}  # Ray node id -> accuracy estimates made there

    def count_node(self, result: dict[str, Any]) -> None:
        """Record where a Tune trial ran (only trials that estimated an accuracy count)."""
        if result.get("accuracy") is not None and result.get("node"):
            self.nodes[result["node"]] = self.nodes.get(result["node"], 0) + 1

    def _trainable(self) -> Any:
        from ray import tune

        return tune.with_parameters(_evaluate, factory=self.factory, key=self.key, decode=self.decode)

    def _run(self, name: str, **tune_config: Any) -> Any:
        from ray import tune

        self._round += 1
        tuner = tune.Tuner(
            self._trainable(),
            param_space=tune_config.pop("param_space", None),
            tune_config=tune.TuneConfig(reuse_actors=True, **tune_config),
            run_config=tune.RunConfig(name=f"{name}{self._round}", storage_path=self._dir, verbose=0, log_to_file=False),
        )
        results = tuner.fit()
        for result in results:
            if result.error is not None:
                raise RuntimeError(f"a Ray Tune evaluation failed: {result.error}")
        return results

    def map(self, candidates: Sequence[Any]) -> list[float]:
        from ray import tune

        if not candidates:
            return []
        configs = [{"arch": self.record(c), "index": i} for i, c in enumerate(candidates)]
        results = self._run("batch", param_space={"cfg": tune.grid_search(configs)})
        accuracy = {}
        for result in results:
            accuracy[result.metrics["index"]] = result.metrics["accuracy"]
            self.count_node(result.metrics)
        return [accuracy[i] for i in range(len(candidates))]

    def run_study(self, ctx: Any, sampler: Any) -> None:
        """Run the Optuna strategy as one Tune experiment over the run's study (see ``ray_searcher.StudySearcher``)."""
        from ray.tune.search import ConcurrencyLimiter

        from .ray_searcher import RUNS, StudySearcher

        remaining = ctx.remaining()
        if remaining <= 0:
            return
        key = uuid.uuid4().hex
        RUNS[key] = (ctx, ctx.store.study_with(sampler), self.record)
        try:
            self._run(
                "optuna",
                search_alg=ConcurrencyLimiter(StudySearcher(key), max_concurrent=self.parallelism),
                num_samples=remaining,
            )
        finally:
            RUNS.pop(key, None)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._started:
            import ray

            ray.shutdown()


__all__ = ["RayExecutor"]
