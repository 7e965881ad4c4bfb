"""A search run's settings: one typed record, checked when made, stored in ``run.yaml`` and the study.

Everything that decides what a run finds is here (the space, device, budget, objectives, strategy,
estimator, seed); a resumed run or a worker joining a shared study must match them. What only
decides where and how a run executes (the run directory, Ray, a progress callback) is an argument of
``nas.search`` instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from search_spaces import DEFAULT_SPACE

from ..budget import Budget
from ..errors import BadInput
from ..estimate import COUNT_PROXIES, DEFAULT_KIND, DEFAULT_PROXY, PROXIES, check_options
from ..pareto import ACCURACY, DEFAULT_OBJECTIVES, parse_objectives
from ..resume import resumed_settings
from .strategies import DEFAULT_STRATEGY, SAMPLERS, STRATEGIES

DEFAULT_STUDY = "nas-search"
#: Settings a resumed run may change.
RESUME_MAY_CHANGE = ("trials",)
#: Settings a worker joining a shared study must have in common with it.
SHARED = ("space", "device", "budget", "objectives", "strategy", "accuracy_source", "seed")


@dataclass(frozen=True)
class SearchSettings:
    """What decides a search run (see the module docstring). Checked when made: a bad value raises
    BadInput naming it; an unknown field is a TypeError, as for any keyword argument."""

    space: str = DEFAULT_SPACE
    budget: Budget = field(default_factory=Budget)
    device: str | None = None
    objectives: tuple[str, ...] | None = None  # None: DEFAULT_OBJECTIVES, less a count the accuracy estimate is
    strategy: str = DEFAULT_STRATEGY
    sampler: str = "nsga2"
    population: int = 50
    trials: int | None = None  # None: the strategy's default
    seed: int = 0
    accuracy: str = DEFAULT_KIND
    proxy: str | None = None
    supernet: str | None = None
    data: str | None = None
    mes_alpha: Mapping[str, float] = field(default_factory=dict)
    mes_unit: Mapping[str, float] = field(default_factory=dict)
    storage: str | None = None
    study: str = DEFAULT_STUDY

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the values in place once
        if not isinstance(self.budget, Budget):
            set_(self, "budget", _budget(self.budget))
        counted = self.accuracy == "proxy" and (self.proxy or DEFAULT_PROXY) in COUNT_PROXIES
        count = (self.proxy or DEFAULT_PROXY) if counted else None
        if self.objectives is None:
            set_(self, "objectives", tuple(o for o in DEFAULT_OBJECTIVES if o != count))
        set_(self, "objectives", parse_objectives(self.objectives))
        if count in self.objectives and ACCURACY in self.objectives:
            raise BadInput(
                f"--objectives {','.join(self.objectives)} with --proxy {count}: {count} would be both the accuracy "
                f"estimate (more is better) and an objective (less is better), so every architecture would be "
                f"Pareto-optimal; drop {count} from --objectives"
            )
        set_(self, "mes_alpha", dict(self.mes_alpha or {}))
        set_(self, "mes_unit", dict(self.mes_unit or {}))
        if self.strategy not in STRATEGIES:
            raise BadInput(f"unknown strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})")
        if self.sampler not in SAMPLERS:
            raise BadInput(f"unknown sampler {self.sampler!r} (choose from {', '.join(SAMPLERS)})")
        for key, low in (("trials", 1), ("population", 2), ("seed", 0)):
            value = getattr(self, key)
            if value is None and key == "trials":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise BadInput(f"--{key} {value}: must be an integer of at least {low}")
        if self.proxy is not None and self.proxy not in PROXIES:
            raise BadInput(f"unknown proxy {self.proxy!r}; accepted: {', '.join(PROXIES)}")
        check_options(self.accuracy, proxy=self.proxy, supernet=self.supernet, data=self.data)

    @property
    def total_trials(self) -> int | None:
        """The run's trial total: `trials`, or the strategy's default (None: until the strategy stops)."""
        return self.trials if self.trials is not None else STRATEGIES[self.strategy].default_trials

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as ``run.yaml`` and the study store it."""
        out = dataclasses.asdict(self)
        out.update(budget=self.budget.to_dict(), objectives=list(self.objectives), trials=self.total_trials)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSettings:
        """Settings as a run stored them (keys that are not settings, such as derived ones, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if isinstance(values.get("objectives"), list):
            values["objectives"] = tuple(values["objectives"])
        return cls(**values)

    def resumed(self, given: Mapping[str, Any]) -> SearchSettings:
        """These (a run's) settings continued with the options `given` (None: not given); only
        :data:`RESUME_MAY_CHANGE` may differ."""
        stored = self.to_dict()
        mine = {k: _plain(v) for k, v in given.items()}
        merged = resumed_settings(
            stored,
            mine,
            may_change=RESUME_MAY_CHANGE,
            where="the run's",
            hint="a resumed run keeps its settings; only --trials may change",
        )
        return SearchSettings.from_dict(merged)


def check_shared(stored: Mapping[str, Any], mine: Mapping[str, Any], study: str) -> None:
    """A worker may join a study only with the settings it was started with (see :data:`SHARED`)."""
    resumed_settings(
        stored,
        {k: mine.get(k) for k in SHARED if k in stored},
        may_change=(),
        where=f"study {study!r}'s",
        hint="workers sharing a study run with its settings",
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Budget):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


def _budget(value: Any) -> Budget:
    """A budget from ``None``, ``{"params": 3e6, "latency_ms": 1.0}`` or ``"params=3M latency=1ms"``."""
    if value is None:
        return Budget()
    if isinstance(value, Mapping):
        return Budget.of(value)
    return Budget.parse(value)


__all__ = ["SearchSettings", "DEFAULT_STUDY", "RESUME_MAY_CHANGE", "SHARED", "check_shared"]
