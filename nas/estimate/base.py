"""What the search needs from an accuracy estimate, with default hooks.

An estimator scores candidates (higher is better, deterministic per candidate) and says how its
scores are normalised in the hypervolume. Two hooks let an estimator that can guess cheaply spare the
expensive measurement (the ``predictor``): :meth:`Estimator.screen` decides, for a batch, which
candidates to measure and which keep a guess, and :meth:`Estimator.observe` learns from measurements
taken elsewhere (an earlier run being resumed, Ray workers). The defaults measure everything and
learn nothing, so a plain estimator only implements :meth:`Estimator.estimate`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Screening's question to the search: for predicted accuracies of a batch, which would join the front.
FrontTest = Callable[[np.ndarray], np.ndarray]


class Estimator(abc.ABC):
    """An accuracy estimate of a search's candidates (architectures of ``space``, or a problem's own)."""

    #: Reported with every estimate as ``accuracy_source``, e.g. ``proxy:naswot``.
    name: str
    #: What the numbers are: ``top-1 %`` (a trained network's accuracy) or ``score`` (a proxy's).
    unit: str = "score"
    #: The space whose smallest and largest architectures anchor :meth:`reference` (None: override it).
    space: Any = None

    @abc.abstractmethod
    def estimate(self, candidates: Sequence[Any]) -> list[float]:
        """One score per candidate, in order; higher means more accurate."""

    def reference(self) -> tuple[float, float]:
        """(worst, scale) for normalising scores in the hypervolume, ``z = (score - worst) / scale``:
        the smallest architecture's score and the span up to the largest's (computed once)."""
        cached = getattr(self, "_reference", None)
        if cached is None:
            if self.space is None:
                raise NotImplementedError(f"{type(self).__name__}.reference(): no space to anchor it; override it")
            worst, best = (float(v) for v in self.estimate([self.space.smallest(), self.space.largest()]))
            scale = best - worst
            cached = self._reference = (worst, scale if math.isfinite(scale) and scale > 0 else 1.0)
        return cached

    @property
    def measured_source(self) -> str:
        """``accuracy_source`` of measured (not screened) values."""
        return self.name

    def screen(
        self, candidates: Sequence[Any], joins_front: FrontTest, measure: Callable[[Sequence[Any]], list[float]]
    ) -> tuple[list[float], list[str]]:
        """Values and sources for a batch: by default every candidate is measured (with `measure`, which
        may run elsewhere, e.g. on Ray workers). An estimator that can guess overrides this."""
        values = measure(candidates)
        return [float(v) for v in values], [self.measured_source] * len(values)

    def observe(self, candidates: Sequence[Any], values: Sequence[float]) -> None:
        """Learn from measured values (an earlier run's, or ones measured by other processes); by default nothing."""
        return None


__all__ = ["Estimator", "FrontTest"]
