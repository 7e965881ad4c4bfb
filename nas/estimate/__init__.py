"""Accuracy estimates for the search: the interface, training-free proxies, the trained supernet, a
predictor that spares supernet evaluations, and a synthetic stand-in for tests and benchmarks.

The search calls only :class:`Estimator` (``name``, ``unit``, ``estimate``, ``reference`` and the
screening hooks); :func:`make_estimator` builds the one ``--accuracy`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_spaces import Space, load

from ..errors import BadInput
from .base import Estimator
from .features import Features
from .predictor import PredictorEstimator
from .proxies import (
    COUNT_PROXIES,
    DATA_PROXIES,
    DEFAULT_PROXY,
    PROXIES,
    ProxyEstimator,
    naswot,
    naswot_kernel,
    naswot_score,
    proxy_resolution,
    synflow,
    zico,
)
from .ranking import (
    RankAgreement,
    TauDifference,
    default_by_evidence,
    rank_agreement,
    tau_difference,
    top_k_recall,
    versus_baseline,
)
from .supernet import SupernetEstimator
from .synthetic import SyntheticAccuracy, enumerate_codes

#: What ``--accuracy`` accepts.
KINDS = ("proxy", "supernet", "predictor")
DEFAULT_KIND = "proxy"


def check_options(kind: str, *, proxy: str | None, supernet: str | None, data: str | None) -> None:
    """BadInput (one line) for a combination of ``--accuracy``, ``--proxy``, ``--supernet`` and
    ``--data`` that no estimator reads: checked when a run's settings are made and again when built."""
    if kind not in KINDS:
        raise BadInput(f"unknown accuracy estimator {kind!r}; accepted: {', '.join(KINDS)}")
    if kind == "proxy" and supernet:
        raise BadInput("--supernet is for --accuracy supernet or predictor, not the proxy")
    if kind != "proxy" and not supernet:
        raise BadInput(
            f"--accuracy {kind} needs --supernet CKPT, a supernet trained with nas train "
            "(e.g. nas train --data fashion-mnist --out supernet.pt)"
        )
    if kind != "proxy" and proxy is not None:
        raise BadInput(f"--proxy is for --accuracy proxy, not {kind}")
    if kind == "proxy" and data and (proxy or DEFAULT_PROXY) not in DATA_PROXIES:
        raise BadInput(f"--data is read by the {' and '.join(DATA_PROXIES)} proxies, not by {proxy}")


def make_estimator(
    kind: str = DEFAULT_KIND,
    space: Space | str | None = None,
    *,
    proxy: str | None = None,
    seed: int = 0,
    supernet: str | None = None,
    data: str | None = None,
    **options: Any,
) -> Estimator:
    """The estimator named by ``--accuracy`` (and ``--proxy``, ``--supernet``, ``--data``) for a space.
    Bad names and missing options raise BadInput."""
    check_options(kind, proxy=proxy, supernet=supernet, data=data)
    if space is None:
        raise TypeError("make_estimator() needs a space")
    space = load(space) if isinstance(space, str) else space
    if kind == "proxy":
        return ProxyEstimator(space, proxy=DEFAULT_PROXY if proxy is None else proxy, seed=seed, data=data, **options)
    measured = SupernetEstimator(supernet, space, data=data, seed=seed, **options)
    return measured if kind == "supernet" else PredictorEstimator(measured, space, seed=seed)


def estimator_from_settings(settings: Mapping[str, Any]) -> Estimator:
    """The estimator a search run's settings describe (``accuracy``, ``space``, ``proxy``, ``seed``,
    ``supernet``, ``data``): how a search builds it, and how its plots and Ray workers rebuild it."""
    kind = settings.get("accuracy") or DEFAULT_KIND
    options = {"supernet": settings.get("supernet")} if kind != "proxy" else {}
    options["data"] = settings.get("data")
    return make_estimator(kind, settings["space"], proxy=settings.get("proxy"), seed=int(settings.get("seed") or 0), **options)


__all__ = [
    "Estimator",
    "ProxyEstimator",
    "SupernetEstimator",
    "PredictorEstimator",
    "SyntheticAccuracy",
    "Features",
    "make_estimator",
    "check_options",
    "estimator_from_settings",
    "enumerate_codes",
    "KINDS",
    "DEFAULT_KIND",
    "PROXIES",
    "DEFAULT_PROXY",
    "DATA_PROXIES",
    "COUNT_PROXIES",
    "naswot",
    "zico",
    "RankAgreement",
    "rank_agreement",
    "TauDifference",
    "tau_difference",
    "default_by_evidence",
    "versus_baseline",
    "top_k_recall",
    "naswot_kernel",
    "naswot_score",
    "synflow",
    "proxy_resolution",
]
