"""Accuracy evaluations as Ray Tune trials, on a local Ray instance (loopback) or a user's cluster.

The strategy and the run's Optuna storage stay in the driver; each batch of architectures that a
strategy hands over (a generation, a batch of Optuna asks, one step of the action search) becomes one
Tune experiment with one trial per architecture. Workers build the accuracy estimator once per
process from a picklable factory, so a proxy's network or a supernet checkpoint is loaded once per
worker, not once per trial.
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
    estimator = _ESTIMATORS.get(key)
    if estimator is None:
        estimator = _ESTIMATORS[key] = factory()
    arch = Arch.from_dict(config["arch"])
    return {"accuracy": float(estimator.estimate([arch])[0]), "arch_id": arch.id}


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

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._started:
            import ray

            ray.shutdown()
