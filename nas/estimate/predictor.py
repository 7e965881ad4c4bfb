"""An accuracy predictor that spares supernet evaluations: measure only what could join the front."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from search_spaces import Arch, Space

from .base import Estimator, FrontTest
from .features import Features


class PredictorEstimator(Estimator):
    """A regressor of (architecture -> measured accuracy), refitted as measurements come in, that lets
    the search measure only the candidates worth measuring.

    ``estimate`` measures with the `base` estimator (the supernet) and learns from the result;
    ``predict`` gives the regressor's values once `warmup` architectures are measured (None before).
    :meth:`screen` measures the candidates whose predicted accuracy would put them on the Pareto front
    of everything evaluated so far; the others keep the prediction and are recorded with
    ``accuracy_source`` ``predictor``. Features: ``nas.estimate.features.Features`` (one-hot genes in use,
    log parameters and log MACs); the regressor is scikit-learn's extremely randomised trees (good with
    a few dozen samples, no scaling needed, deterministic under a seed).
    """

    name = "predictor"
    unit = "top-1 %"

    def __init__(self, base: Estimator, space: Space, *, warmup: int = 40, seed: int = 0, trees: int = 200):
        if warmup < 2:
            raise ValueError(f"the predictor needs at least 2 warm-up measurements, got {warmup}")
        self.base, self.space, self.warmup, self.seed, self.trees = base, space, warmup, seed, trees
        self._seen: dict[str, int] = {}
        self._x: list[Any] = []
        self._y: list[float] = []
        self._model: Any = None
        self._fitted_on = 0
        self._features: Any = None

    @property
    def measured_source(self) -> str:
        """``accuracy_source`` of measured entries (the base estimator's name)."""
        return self.base.name

    @property
    def measured(self) -> int:
        return len(self._y)

    def features(self, archs: Sequence[Arch]) -> Any:
        if self._features is None:
            self._features = Features(self.space)
        return self._features(self._features.codes(archs))

    def observe(self, archs: Sequence[Arch], values: Sequence[float]) -> None:
        """Learn from measured accuracies (also those of a resumed run's earlier trials)."""
        new = [(a, float(v)) for a, v in zip(archs, values) if a.id not in self._seen and math.isfinite(float(v))]
        if not new:
            return
        for row, (arch, value) in zip(self.features([a for a, _ in new]), new):
            self._seen[arch.id] = len(self._y)
            self._x.append(row)
            self._y.append(value)

    def estimate(self, archs: Sequence[Arch]) -> list[float]:
        values = [float(v) for v in self.base.estimate(archs)]
        self.observe(archs, values)
        return values

    def predict(self, archs: Sequence[Arch]) -> np.ndarray | None:
        """Predicted accuracies, or None until `warmup` architectures are measured."""
        if self.measured < self.warmup or not archs:
            return None
        # Refitted each time the measurements grow by a tenth, on exactly the first `size` of them: the
        # model is a function of the measurement count, so a resumed search predicts as the uninterrupted one.
        size = self.warmup
        while max(size + 1, math.ceil(size * 1.1)) <= self.measured:
            size = max(size + 1, math.ceil(size * 1.1))
        if self._model is None or size != self._fitted_on:
            from sklearn.ensemble import ExtraTreesRegressor

            self._model = ExtraTreesRegressor(n_estimators=self.trees, min_samples_leaf=2, random_state=self.seed, n_jobs=1).fit(
                np.array(self._x[:size]), np.array(self._y[:size])
            )
            self._fitted_on = size
        return self._model.predict(self.features(archs))

    def screen(
        self, archs: Sequence[Arch], joins_front: FrontTest, measure: Callable[[Sequence[Arch]], list[float]]
    ) -> tuple[list[float], list[str]]:
        """Measure the candidates whose predicted accuracy would put them on the front (all of them
        before the warm-up is done); the others keep their prediction."""
        predicted = self.predict(archs)
        if predicted is None:
            return super().screen(archs, joins_front, measure)
        promising = np.asarray(joins_front(np.asarray(predicted, dtype=float)), dtype=bool)
        chosen = [a for a, keep in zip(archs, promising) if keep]
        measured = dict(zip([a.id for a in chosen], measure(chosen)))
        values = [float(measured.get(a.id, p)) for a, p in zip(archs, predicted)]
        sources = [self.measured_source if a.id in measured else self.name for a in archs]
        return values, sources

    def reference(self) -> tuple[float, float]:
        return self.base.reference()


__all__ = ["PredictorEstimator"]
