"""The evolution's accuracy surrogate and its batch choice by expected hypervolume improvement.

:class:`RidgeSurrogate` learns (candidate -> measured accuracy) from the trials so far: ridge
regression on the problem's features, with its penalty chosen by leave-one-out error, which also
gives the predictive spread used for expected hypervolume improvement. Deterministic: the same trials
give the same model, so a resumed search proposes what the uninterrupted one did.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import moocore
import numpy as np
from scipy.stats import norm


class RidgeSurrogate:
    """Ridge regression of accuracy on a feature map's design matrix (for the architecture search:
    ``nas.estimate.Features``, the genes in use, log parameters and log MACs, and the squares and
    product of the two logs; for a problem of one's own, its genes one-hot).

    ``fit`` picks the penalty from a grid by exact leave-one-out error (closed form for ridge) and
    keeps that error's root mean square as the predictive spread ``sigma``: how far a new candidate's
    accuracy typically lies from the prediction.
    """

    ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)

    def __init__(self, features: Any):
        self.features = features  # .codes(candidates) -> encodings (memoised), .design(codes) -> matrix
        self.sigma = float("nan")
        self.alpha = float("nan")
        self._coef: np.ndarray | None = None

    def _design(self, codes: np.ndarray) -> np.ndarray:
        return self.features.design(codes)

    def fit(self, codes: np.ndarray, accuracy: Sequence[float]) -> RidgeSurrogate:
        x = self._design(codes)
        y = np.asarray(accuracy, dtype=float)
        self._mean, self._scale = x.mean(axis=0), x.std(axis=0)
        self._scale[self._scale == 0] = 1.0
        z = (x - self._mean) / self._scale
        y_mean = y.mean()
        # ridge through the eigenvectors of Z'Z: every penalty's fit and leave-one-out residuals at once
        # (Z = U S V', so U = Z V / S; columns of Z are centred, so the intercept adds 1/n to each leverage)
        eigval, v = np.linalg.eigh(z.T @ z)
        keep = eigval > 1e-9 * max(float(eigval.max()), 1e-300)
        s2, v = eigval[keep], v[:, keep]
        u = (z @ v) / np.sqrt(s2)
        uty = u.T @ (y - y_mean)
        best = None
        for alpha in self.ALPHAS:
            shrink = s2 / (s2 + alpha)
            fitted = u @ (shrink * uty) + y_mean
            leverage = (u * u) @ shrink + 1.0 / len(y)
            loo = (y - fitted) / np.maximum(1.0 - leverage, 1e-6)
            rmse = float(np.sqrt(np.mean(loo * loo)))
            if best is None or rmse < best[0]:
                best = (rmse, alpha, v @ (np.sqrt(s2) / (s2 + alpha) * uty))
        self.sigma, self.alpha, coef = best
        self._coef, self._intercept = coef, y_mean
        return self

    def predict(self, codes: np.ndarray) -> np.ndarray:
        if self._coef is None:
            raise RuntimeError("RidgeSurrogate.predict() before fit()")
        z = (self._design(codes) - self._mean) / self._scale
        return z @ self._coef + self._intercept


def expected_improvement_batch(
    front: np.ndarray, candidates: np.ndarray, spread: np.ndarray, column: int, k: int, quantiles: int = 5, slack: float = 0.0
) -> list[int]:
    """Greedily pick up to `k` candidates (rows of normalised costs, lower is better, reference 1) by
    expected hypervolume improvement over `front`, where each candidate's cost in `column` (its
    accuracy) is uncertain with standard deviation `spread` (the others are exact).

    The expectation is a mean over fixed Gaussian quantiles. After each pick the candidate joins the
    front at its predicted cost (the "believer" rule), so a batch spreads along the front instead of
    piling onto one spot. Improvements only shrink as the front grows, and a candidate's improvement
    at its most optimistic quantile bounds its expectation, so a lazy greedy computes the expectation
    only for candidates that could still be the best; with `slack` it takes a candidate whose refreshed
    expectation is within that fraction of the best bound left (fewer refreshes, a near-greedy batch).
    Candidates with no chance of improving the front are never picked, so fewer than `k` may come back.
    """
    candidates = np.asarray(candidates, dtype=float)
    z = norm.ppf((np.arange(quantiles) + 0.5) / quantiles)
    ref = np.ones(candidates.shape[1])
    front = np.asarray(front, dtype=float).reshape(-1, candidates.shape[1])
    points = np.vstack([front[np.all(front < ref, axis=1)], np.zeros((1, candidates.shape[1]))])  # last row: the probe
    hv = moocore.Hypervolume(ref=ref)
    base = hv(points[:-1]) if len(points) > 1 else 0.0

    def improvement(c: np.ndarray) -> float:
        if not np.all(c < ref):
            return 0.0
        if len(points) == 1:
            return float(np.prod(ref - c))
        points[-1] = c
        return hv(points) - base

    def shifted(i: int, q: float) -> np.ndarray:
        c = candidates[i].copy()
        c[column] -= q * spread[i]  # a lower cost is a higher accuracy
        return c

    def expected(i: int) -> float:
        return sum(improvement(shifted(i, q)) for q in z) / len(z)

    # a candidate dominated by the front even at its most optimistic quantile cannot gain
    best_case = candidates.copy()
    best_case[:, column] -= z.max() * spread
    hopeful = np.all(best_case < ref, axis=1)
    if len(points) > 1:
        f = points[:-1]
        for start in range(0, len(candidates), 1024):
            block = best_case[start : start + 1024]
            hopeful[start : start + 1024] &= ~np.any(np.all(f[None, :, :] <= block[:, None, :], axis=2), axis=1)
    # (-value, candidate, picks when the value was computed exactly; -1 for the optimistic bound)
    heap = [(-v, int(i), -1) for i in np.flatnonzero(hopeful) if (v := improvement(best_case[i])) > 0]
    heapq.heapify(heap)
    chosen: list[int] = []
    while heap and len(chosen) < k:
        neg, i, when = heapq.heappop(heap)
        if when != len(chosen):  # a bound, not the current expectation: refresh it
            value = expected(i)
            if value <= 0:
                continue
            if heap and value < (1.0 - slack) * -heap[0][0]:  # another may be better: look again
                heapq.heappush(heap, (-value, i, len(chosen)))
                continue
        chosen.append(i)
        points = np.vstack([points[:-1], candidates[i][None, :], points[-1:]])
        base = hv(points[:-1])
    return chosen


__all__ = ["RidgeSurrogate", "expected_improvement_batch"]
