"""A search's outcome: the Pareto front of its feasible entries, its hypervolume, and the JSON of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadInput
from ..pareto import Normaliser, common_normaliser, hypervolume, pareto_mask
from .entry import Entry


@dataclass
class SearchResult:
    """A run's outcome: the JSON of ``nas search --json`` via :meth:`to_dict`; ``pareto`` sorted by latency."""

    run: str | None
    space: str
    device: str
    device_provenance: str
    strategy: str
    budget: dict[str, float]
    objectives: tuple[str, ...]
    evaluated: int
    feasible: int
    hypervolume: float
    reference: dict[str, float]
    pareto: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the latency table's typical relative error (%, held out), None for a measured table
    latency_error_pct: float | None = None
    #: what the accuracy column is: ``top-1 %`` (supernet, predictor) or ``score`` (a proxy's)
    accuracy_unit: str = "score"
    #: with Ray: accuracy estimates per Ray node id in this worker's run (in the JSON only then)
    ray_nodes: dict[str, int] = field(default_factory=dict)
    #: every evaluated entry in trial order; not part of the JSON
    history: list[Entry] = field(default_factory=list, repr=False)
    #: how the run normalises objectives for its hypervolume, and the settings it was started with
    #: (its estimator, table, MES options), so fronts can be compared and plotted; not part of the JSON
    normaliser: Normaliser | None = field(default=None, repr=False)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        ray = {"ray_nodes": dict(self.ray_nodes)} if self.ray_nodes else {}
        return {
            "run": self.run,
            "space": self.space,
            "device": self.device,
            "device_provenance": self.device_provenance,
            "latency_error_pct": self.latency_error_pct,
            "accuracy_unit": self.accuracy_unit,
            "strategy": self.strategy,
            "budget": self.budget,
            "objectives": list(self.objectives),
            "evaluated": self.evaluated,
            "feasible": self.feasible,
            "hypervolume": self.hypervolume,
            "reference": self.reference,
            "pareto": self.pareto,
            "notes": self.notes,
            **ray,
        }


def front(entries: Sequence[Entry], normaliser: Normaliser) -> tuple[list[Entry], float]:
    """The non-dominated feasible entries (one per candidate), sorted by latency, and their hypervolume."""
    unique: dict[str, Entry] = {}
    for e in entries:
        if e.feasible and e.accuracy is not None and e.extra.get("duplicate_of") is None:
            unique.setdefault(e.id, e)
    candidates = list(unique.values())
    if not candidates:
        return [], 0.0
    costs = normaliser.costs(candidates)
    mask = pareto_mask(costs)
    chosen = [c for c, keep in zip(candidates, mask) if keep]
    order = [key for key in ("latency_ms", "params") if key in chosen[0].metrics]
    chosen.sort(key=lambda e: tuple(e.metrics[key] for key in order) + (e.number,))
    return chosen, hypervolume(costs[mask])


def public_entry(
    entry: Entry, run: str | None, record: Any, keys: Sequence[str], latency_error_pct: float | None = None
) -> dict[str, Any]:
    """An entry as the JSON shows it: ``id`` is ``RUN_DIR#N`` (N the trial number), ``arch`` the candidate's
    `record`, then the metrics in `keys` (with ``latency_error_ms`` after the latency when the table
    states its error) and ``accuracy_source``."""
    out = {"id": f"{run}#{entry.number}" if run else f"#{entry.number}", "arch": record}
    for key in keys:
        out[key] = entry.metrics.get(key)
        if key == "latency_ms" and latency_error_pct is not None and out[key] is not None:
            out["latency_error_ms"] = out[key] * latency_error_pct / 100
    out["accuracy_source"] = entry.source
    return out


def result_of(
    store: Any,
    normaliser: Normaliser,
    settings: Mapping[str, Any],
    run: str | None,
    record: Any = None,
    keys: Sequence[str] | None = None,
) -> SearchResult:
    """The result of a run's store (`record` turns a candidate into JSON data; default ``to_dict()``)."""
    record = record or (lambda c: c.to_dict())
    keys = keys or ("params", "macs", "latency_ms", "mes", "accuracy")
    entries, hv = front(store.entries, normaliser)
    strategy = settings["strategy"] if settings["strategy"] != "optuna" else f"optuna:{settings['sampler']}"
    return SearchResult(
        run=run,
        space=settings["space"],
        device=settings.get("device") or "",
        device_provenance=settings.get("device_provenance") or "",
        latency_error_pct=settings.get("latency_error_pct"),
        accuracy_unit=settings.get("accuracy_unit") or "score",
        strategy=strategy,
        budget=dict(settings["budget"]),
        objectives=tuple(settings["objectives"]),
        evaluated=store.evaluated,
        feasible=len(store.feasible),
        hypervolume=hv,
        reference=normaliser.to_dict(),
        pareto=[public_entry(e, run, record(e.candidate), keys, settings.get("latency_error_pct")) for e in entries],
        history=list(store.entries),
        normaliser=normaliser,
        settings=dict(settings),
    )


def compare_runs(results: Sequence[SearchResult]) -> dict[str, Any]:
    """Hypervolumes of several runs' fronts against one reference point (see ``common_normaliser``), so
    that runs with different budgets still compare: ``{"common_reference": raw values by metric key,
    "hypervolumes": [one per run, in order]}``. Runs over different objectives are a BadInput."""
    names = [r.run or "(in memory)" for r in results]
    if len({r.objectives for r in results}) > 1:
        raise BadInput(
            "runs with different objectives cannot share a hypervolume reference: "
            + ", ".join(f"{n} ({','.join(r.objectives)})" for n, r in zip(names, results))
        )
    normalisers = [r.normaliser for r in results]
    if any(n is None for n in normalisers):
        raise ValueError("compare_runs() needs results from search() or run_result() (they carry their normaliser)")
    common = common_normaliser(normalisers)
    return {"common_reference": common.to_dict(), "hypervolumes": [hypervolume(common.costs(r.pareto)) for r in results]}


__all__ = ["SearchResult", "front", "public_entry", "result_of", "compare_runs"]
