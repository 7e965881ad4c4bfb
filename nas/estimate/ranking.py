"""How well an estimate ranks a ground truth: Kendall tau and Spearman with bootstrap intervals and
p-values, and top-k recall, in one typed record.

A rank correlation over a few dozen architectures is itself uncertain (over 24 architectures a tau of
0.3 has a 95% interval about 0.3 wide), so every figure comes with the interval that says whether two
estimators can be told apart. The intervals resample architectures (pairs of estimate and truth) with
replacement, percentile method, from a seeded generator: the same inputs give the same interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class RankAgreement:
    """Agreement of an estimate with a ground truth over ``n`` architectures."""

    n: int
    kendall_tau: float
    kendall_low: float
    kendall_high: float
    kendall_p: float
    spearman: float
    spearman_low: float
    spearman_high: float
    spearman_p: float
    top_recall: float  # share of the truth's best quarter that the estimate's best quarter holds
    top_k: int

    def describe(self) -> str:
        return (
            f"Kendall tau {self.kendall_tau:.3f} [{self.kendall_low:.2f}, {self.kendall_high:.2f}] p {self.kendall_p:.3g}, "
            f"Spearman {self.spearman:.3f} [{self.spearman_low:.2f}, {self.spearman_high:.2f}], "
            f"top-{self.top_k} recall {self.top_recall:.2f}"
        )

    def to_dict(self) -> dict[str, float | int]:
        return _rounded(self)


def _rounded(record: object) -> dict[str, float | int]:
    """A record's fields for JSON, floats to four places."""
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.__dict__.items()}


def _paired_values(caller: str, *sequences: Sequence[float]) -> tuple[np.ndarray, ...]:
    """`sequences` as float arrays, checked to be one-dimensional, of one length of at least 3, finite."""
    arrays = tuple(np.asarray(v, dtype=float) for v in sequences)
    shapes = [a.shape for a in arrays]
    if len(set(shapes)) != 1 or arrays[0].ndim != 1 or len(arrays[0]) < 3:
        raise ValueError(
            f"{caller}() needs {len(arrays)} equal-length sequences of at least 3 values, got {', '.join(map(str, shapes))}"
        )
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError(f"{caller}(): estimates and truth must be finite")
    return arrays


def _paired_interval(
    samples: tuple[np.ndarray, ...], statistic, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """The percentile bootstrap interval of `statistic` over `samples` resampled together (the same
    architectures for every sample), from a generator seeded by `seed`."""
    result = stats.bootstrap(
        samples,
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def top_k_recall(estimate: Sequence[float], truth: Sequence[float], k: int) -> float:
    """The share of the truth's `k` best that are among the estimate's `k` best (ties broken by order)."""
    estimate, truth = np.asarray(estimate, dtype=float), np.asarray(truth, dtype=float)
    if not 1 <= k <= len(truth):
        raise ValueError(f"k = {k}: expected 1 <= k <= {len(truth)}")
    best_estimated = set(np.argsort(-estimate, kind="stable")[:k].tolist())
    best_true = set(np.argsort(-truth, kind="stable")[:k].tolist())
    return len(best_estimated & best_true) / k


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():  # a resample may repeat one architecture only: no ranking, tau 0
        warnings.simplefilter("ignore")
        tau = stats.kendalltau(x, y).statistic
    return 0.0 if math.isnan(tau) else float(tau)  # a resample with one distinct value carries no ranking


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(x, y).statistic
    return 0.0 if math.isnan(rho) else float(rho)


def rank_agreement(
    estimate: Sequence[float],
    truth: Sequence[float],
    *,
    top_fraction: float = 0.25,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RankAgreement:
    """Kendall tau and Spearman of `estimate` against `truth` (higher is better in both), their
    bootstrap intervals and p-values (scipy's exact or asymptotic tests of no association), and the
    recall of the truth's best `top_fraction` (at least one architecture)."""
    x, y = _paired_values("rank_agreement", estimate, truth)
    kendall, spearman = stats.kendalltau(x, y), stats.spearmanr(x, y)
    intervals = {
        name: _paired_interval((x, y), statistic, resamples, confidence, seed)
        for name, statistic in (("kendall", _kendall), ("spearman", _spearman))
    }
    k = max(1, round(top_fraction * len(y)))
    return RankAgreement(
        n=len(y),
        kendall_tau=_kendall(x, y),
        kendall_low=intervals["kendall"][0],
        kendall_high=intervals["kendall"][1],
        kendall_p=float(kendall.pvalue) if not math.isnan(kendall.pvalue) else 1.0,
        spearman=_spearman(x, y),
        spearman_low=intervals["spearman"][0],
        spearman_high=intervals["spearman"][1],
        spearman_p=float(spearman.pvalue) if not math.isnan(spearman.pvalue) else 1.0,
        top_recall=top_k_recall(x, y, k),
        top_k=k,
    )


@dataclass(frozen=True)
class TauDifference:
    """Kendall tau of estimate ``a`` minus that of ``b`` against one truth, with the paired bootstrap
    interval: both taus are computed on the same resampled architectures, so the noise they share (a
    hard resample is hard for both) cancels and the interval is much narrower than the two separate
    ones overlapping would suggest."""

    n: int
    difference: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """True when the whole interval lies above zero: ``a`` ranks the truth better than ``b``."""
        return self.low > 0.0

    def to_dict(self) -> dict[str, float | int]:
        return _rounded(self)


def tau_difference(
    a: Sequence[float],
    b: Sequence[float],
    truth: Sequence[float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> TauDifference:
    """tau(a, truth) - tau(b, truth) with its paired percentile bootstrap interval (architectures
    resampled with replacement, the same resample for both estimates, seeded)."""
    x, y, t = _paired_values("tau_difference", a, b, truth)
    low, high = _paired_interval((x, y, t), lambda xs, ys, ts: _kendall(xs, ts) - _kendall(ys, ts), resamples, confidence, seed)
    return TauDifference(
        n=len(t),
        difference=_kendall(x, t) - _kendall(y, t),
        low=low,
        high=high,
    )


def versus_baseline(
    estimates: dict[str, Sequence[float]], truth: Sequence[float], *, baseline: str = "proxy:params", seed: int = 0
) -> dict[str, TauDifference]:
    """Every estimate's paired tau difference to `baseline`'s (tau_difference), by name."""
    if baseline not in estimates:
        raise ValueError(f"the baseline {baseline!r} is not among the estimates")
    reference = estimates[baseline]
    return {name: tau_difference(v, reference, truth, seed=seed) for name, v in estimates.items() if name != baseline}


def default_by_evidence(
    estimates: dict[str, Sequence[float]],
    truth: Sequence[float],
    *,
    baseline: str = "proxy:params",
    seed: int = 0,
    differences: dict[str, TauDifference] | None = None,
) -> tuple[str, str]:
    """(estimator, why): the rule that picks the accuracy estimate ``nas search`` uses by default.
    Among the candidates that beat `baseline` (parameter count: free, and what any tool falls back
    to) in the paired test of `tau_difference`, the one of highest tau (of equal taus, the first in
    `estimates`' order); if none does, the baseline itself. A candidate has to earn its place against
    the truth, not merely score higher on a few dozen noisy architectures. `differences`: the paired
    tests already computed by versus_baseline (same seed), so they are not run twice."""
    if differences is None:
        differences = versus_baseline(estimates, truth, baseline=baseline, seed=seed)
    elif baseline not in estimates:
        raise ValueError(f"the baseline {baseline!r} is not among the estimates")
    t = np.asarray(truth, dtype=float)
    best: tuple[float, str] | None = None
    for name, diff in differences.items():
        tau = _kendall(np.asarray(estimates[name], dtype=float), t)
        if diff.significant and (best is None or tau > best[0]):
            best = (tau, name)
    if best is None:
        base_tau = _kendall(np.asarray(estimates[baseline], dtype=float), t)
        return baseline, f"no estimator beats {baseline} (tau {base_tau:.3f}) in the paired bootstrap test"
    tau, name = best
    diff = differences[name]
    return name, f"tau {tau:.3f}, {diff.difference:+.3f} over {baseline} (paired 95% interval {diff.low:.2f} to {diff.high:.2f})"


__all__ = [
    "RankAgreement",
    "TauDifference",
    "default_by_evidence",
    "rank_agreement",
    "tau_difference",
    "top_k_recall",
    "versus_baseline",
]
