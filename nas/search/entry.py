"""The record of one evaluated candidate, as a strategy sees it and as a run stores it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..pareto import ACCURACY

#: What strategies add to a trial: evolution's generation; the action search's step, action and parent
#: trial; a repeat's original trial.
EXTRA_KEYS = ("generation", "step", "action", "parent", "duplicate_of")


@dataclass(frozen=True)
class Entry:
    """One candidate with its metrics, like Optuna's ``FrozenTrial``: immutable, typed.

    `metrics` holds every cheap metric exactly (for the architecture search: params, macs, latency_ms,
    mes) and ``accuracy``, None until it is estimated (it never is for an over-budget candidate).
    `number` is the trial number once the entry is recorded in a run; `source` says where the accuracy
    came from (``proxy:naswot``, ``supernet``, ``predictor``, ...); `extra` holds what the strategy
    adds (see :data:`EXTRA_KEYS`).
    """

    candidate: Any
    id: str
    metrics: Mapping[str, float | None]
    feasible: bool
    violations: tuple[str, ...] = ()
    source: str | None = None
    number: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> Any:
        """The candidate (an ``Arch`` in the architecture search)."""
        return self.candidate

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get(ACCURACY)

    def __getitem__(self, key: str) -> float | None:
        """A metric by key: ``entry["latency_ms"]``."""
        return self.metrics[key]

    def with_accuracy(self, value: float | None, source: str | None) -> Entry:
        return dataclasses.replace(self, metrics={**self.metrics, ACCURACY: value}, source=source)

    def with_extra(self, **extra: Any) -> Entry:
        """The entry with strategy attributes added (None values are left out)."""
        return dataclasses.replace(self, extra={**self.extra, **{k: v for k, v in extra.items() if v is not None}})

    def recorded(self, number: int) -> Entry:
        return dataclasses.replace(self, number=number)


__all__ = ["Entry", "ACCURACY", "EXTRA_KEYS"]
