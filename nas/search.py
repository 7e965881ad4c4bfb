"""``nas.search``: run a strategy under budgets, record every trial, and return the Pareto front.

The flow is SPEC section 7's: check that each budget is achievable at all (exit 3 otherwise), then
let the strategy propose architectures; cheap metrics decide feasibility before any accuracy is
estimated; every evaluated architecture becomes one trial of the run's Optuna study; the front and
its hypervolume are computed over the feasible trials.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import search_spaces
from search_spaces import Space

from .budget import Budget, check_feasible
from .errors import BadInput
from .pareto import DEFAULT_OBJECTIVES, Normaliser, common_normaliser, hypervolume, pareto_mask, parse_objectives
from .runs import (
    PARETO_FILE,
    RUN_FILE,
    RunStore,
    default_storage,
    open_storage,
    public_entry,
    versions,
    worker_name,
    write_json_atomic,
)
from .strategies import STRATEGIES, make_strategy

DEFAULT_TRIALS = {"evolution": 500, "optuna": 500, "actions": 20000}
DEFAULT_STUDY = "nas-search"


@dataclass
class SearchResult:
    """A run's outcome: SPEC section 4's JSON via :meth:`to_dict`; ``pareto`` sorted by latency."""

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
    #: every evaluated entry in trial order (with ``arch`` as an Arch); not part of the JSON
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: how the run normalises objectives for its hypervolume, and the settings it was started with
    #: (its estimator, table, MES options), so fronts can be compared and plotted; not part of the JSON
    normaliser: Normaliser | None = field(default=None, repr=False)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "space": self.space, "device": self.device, "device_provenance": self.device_provenance,
                "strategy": self.strategy, "budget": self.budget, "objectives": list(self.objectives),
                "evaluated": self.evaluated, "feasible": self.feasible, "hypervolume": self.hypervolume,
                "reference": self.reference, "pareto": self.pareto}


def front(entries: Sequence[dict[str, Any]], normaliser: Normaliser) -> tuple[list[dict[str, Any]], float]:
    """The non-dominated feasible entries (one per architecture), sorted by latency, and their hypervolume."""
    unique: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e["feasible"] and e.get("accuracy") is not None and e.get("duplicate_of") is None:
            unique.setdefault(e["arch_id"], e)
    candidates = list(unique.values())
    if not candidates:
        return [], 0.0
    costs = normaliser.costs(candidates)
    mask = pareto_mask(costs)
    chosen = [c for c, keep in zip(candidates, mask) if keep]
    chosen.sort(key=lambda e: (e["latency_ms"], e["params"], e["number"]))
    return chosen, hypervolume(costs[mask])


class SearchContext:
    """What a strategy sees: the problem, the run's store, the trial total, the seed; it evaluates and
    records architectures and reports progress."""

    def __init__(self, problem: Any, store: RunStore, trials: int, seed: int, *, salt: int = 0, shared: bool = False,
                 progress: Callable[[dict[str, Any]], None] | None = None, executor: Any = None):
        self.problem, self.store, self.trials, self.seed = problem, store, trials, seed
        self.salt, self.shared, self.progress, self.executor = salt, shared, progress, executor
        self.batch_size = executor.parallelism if executor is not None else 1  # Optuna asks per batch
        self.worker = worker_name()
        self.notes: list[str] = []
        self.exhausted = False  # a shared study's total was reached by claimed slots
        self._last_report = 0.0
        self._front_size, self._hypervolume = 0, 0.0

    def note(self, message: str) -> None:
        self.notes.append(message)

    def reserve(self, study: Any = None) -> Any | None:
        """A slot in a shared study, or None once the total is reached (then nothing remains)."""
        trial = self.store.reserve(self.trials, study)
        if trial is None:
            self.exhausted = True
        return trial

    def remaining(self) -> int:
        if self.exhausted:
            return 0
        if self.shared:
            self.store.refresh()  # other workers' trials count toward the same total
        return max(0, self.trials - self.store.evaluated)

    def evaluate(self, metrics: Sequence[dict[str, Any]], *, force_accuracy: bool = False,
                 **attrs: Any) -> list[dict[str, Any]]:
        """Estimate the accuracy of those within budget (all, with `force_accuracy`), record each as a
        trial, and return the recorded entries; stops early at the run's trial total."""
        budget_left = self.remaining()
        batch = [dict(m, **{k: v for k, v in attrs.items() if v is not None}) for m in metrics][:budget_left]
        slots = []
        if self.shared:  # claim the slots first, so that workers stop at the total and do not race
            for _ in batch:
                trial = self.reserve()
                if trial is None:
                    break
                slots.append(trial)
            batch = batch[: len(slots)]
        if not batch:
            return []
        wanted = [m for m in batch if force_accuracy or m["feasible"]]
        accuracy, sources = self._estimate(wanted, screen=not force_accuracy)
        recorded = []
        placeholder = self.problem.placeholder_accuracy()
        for i, m in enumerate(batch):
            m["accuracy"] = accuracy.get(m["arch_id"])
            m["accuracy_source"] = sources.get(m["arch_id"], self.problem.accuracy_source)
            recorded.append(self.store.finish(slots[i], m, placeholder) if slots else self.store.add(m, placeholder))
            self.report()
        return recorded

    def _accuracy(self, archs: list[Any]) -> list[float]:
        if not archs:
            return []
        if self.executor is not None:
            values = self.executor.map(archs)
            observe = getattr(self.problem.estimator, "observe", None)
            if observe is not None:  # the driver's predictor learns from what the workers measured
                observe(archs, values)
            return values
        return self.problem.accuracy(archs)

    def _estimate(self, metrics: Sequence[dict[str, Any]], screen: bool = True) -> tuple[dict[str, float], dict[str, str]]:
        """Accuracy (and its source) per architecture id. With a predictor, a screened batch is measured
        only where the predicted accuracy would put a candidate on the Pareto front of everything
        evaluated so far; the others keep the prediction."""
        unique = list({m["arch_id"]: m for m in metrics}.values())
        estimator = self.problem.estimator
        predict = getattr(estimator, "predict", None) if screen else None
        predicted = predict([m["arch"] for m in unique]) if predict is not None and unique else None
        if predicted is None:
            values = self._accuracy([m["arch"] for m in unique])
            source = getattr(estimator, "measured_source", self.problem.accuracy_source)
            return {m["arch_id"]: v for m, v in zip(unique, values)}, {m["arch_id"]: source for m in unique}
        candidates = [dict(m, accuracy=float(v)) for m, v in zip(unique, predicted)]
        known = [e for e in self.store.entries if e["feasible"] and e["accuracy"] is not None]
        promising = pareto_mask(self.problem.costs(known + candidates))[len(known):]
        measure = [m for m, keep in zip(candidates, promising) if keep]
        measured = dict(zip([m["arch_id"] for m in measure], self._accuracy([m["arch"] for m in measure])))
        accuracy, sources = {}, {}
        for m in candidates:
            if m["arch_id"] in measured:
                accuracy[m["arch_id"]], sources[m["arch_id"]] = measured[m["arch_id"]], estimator.measured_source
            else:
                accuracy[m["arch_id"]], sources[m["arch_id"]] = m["accuracy"], estimator.name
        return accuracy, sources

    def finish_trials(self, study: Any, asked: Sequence[tuple[Any, dict[str, Any]]]) -> None:
        """Finish Optuna ask/tell trials: estimate the accuracy of the new architectures within budget
        (one batch), and tell each trial. A repeat of an architecture already evaluated reuses its
        metrics (it is not estimated again) and is marked ``duplicate_of``."""
        wanted = [m for _, m in asked if m["feasible"] and m["arch_id"] not in self.store.by_id]
        accuracy, sources = self._estimate(wanted)
        for trial, metrics in asked:
            entry = dict(metrics)
            done = self.store.by_id.get(metrics["arch_id"])
            if done is not None:
                entry["accuracy"], entry["duplicate_of"] = done["accuracy"], done["number"]
                entry["accuracy_source"] = done["accuracy_source"]
            else:
                entry["accuracy"] = accuracy.get(metrics["arch_id"])
                entry["accuracy_source"] = sources.get(metrics["arch_id"], self.problem.accuracy_source)
            self.store.finish(trial, entry, self.problem.placeholder_accuracy(), self.problem.constraint_values(metrics))
            self.report()

    def report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_report > 0.5:
            self._last_report = now
            entries, hv = front(self.store.entries, self.problem.normaliser)
            self._front_size, self._hypervolume = len(entries), hv
        evaluated = self.store.evaluated
        self.progress({"evaluated": evaluated, "total": self.trials, "feasible": len(self.store.feasible),
                       "front": self._front_size, "hypervolume": self._hypervolume})


def _budget(budget: Budget | Mapping[str, float] | str | Sequence[str] | None) -> Budget:
    if isinstance(budget, Budget):
        return budget
    if budget is None:
        return Budget()
    if isinstance(budget, Mapping):
        aliases = {"latency": "latency_ms"}
        try:
            return Budget(**{aliases.get(k, k): float(v) for k, v in budget.items()})
        except TypeError:
            raise BadInput(f"budget {dict(budget)}: keys are params, macs, latency_ms, mes") from None
    return Budget.parse(budget)


def search(space: Space | str = "efficientformerv2", budget: Budget | Mapping[str, float] | str | None = None,
           device: str | None = None, *, lut: Any = None, trials: int | None = None, seed: int = 0,
           strategy: str = "evolution", sampler: str = "nsga2", accuracy: str = "proxy", proxy: str | None = None,
           supernet: str | None = None, data: str | None = None,
           estimator: Any = None, objectives: str | Sequence[str] = DEFAULT_OBJECTIVES,
           mes_alpha: dict[str, float] | None = None, mes_unit: dict[str, float] | None = None,
           out: str | Path | None = None, storage: str | None = None, study: str | None = None, resume: bool = False,
           population: int = 50, ray: str | bool | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
           command: str | None = None) -> SearchResult:
    """Search `space` for the Pareto front under `budget` on `device` (see SPEC sections 7 and 9).

    With `out`, the run's files go there (``study.db`` unless `storage` names an Optuna RDB URL,
    ``run.yaml``, ``pareto.json``); without, the trials stay in memory. `resume` continues the run's
    study to `trials` evaluations in total. A `storage` and `study` that already exist are joined:
    several workers then share one study and its trial total.
    """
    import latency_lut

    from .problem import Problem

    if strategy not in STRATEGIES:
        raise BadInput(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    space = search_spaces.load(space) if isinstance(space, str | Path) else space
    budget = _budget(budget)
    objectives = parse_objectives(objectives)
    trials = DEFAULT_TRIALS[strategy] if trials is None else int(trials)
    if trials < 1:
        raise BadInput(f"--trials {trials}: must be at least 1")
    if population < 2:
        raise BadInput(f"--population {population}: must be at least 2")
    lut = lut or latency_lut.load(device)
    lut.check_space(space)
    check_feasible(budget, space, lut, mes_alpha, mes_unit)
    made_here = estimator is None
    if made_here:
        estimator = _estimator_from_ref(accuracy, space.ref, proxy, seed, supernet, data)
    problem = Problem(space, lut, budget, estimator, objectives, mes_alpha, mes_unit)

    run_dir = Path(out) if out is not None else None
    study_name = study or DEFAULT_STUDY
    if run_dir is not None:
        if (run_dir / RUN_FILE).exists() and not resume and storage is None:
            raise BadInput(f"{run_dir} already holds a search run: add --resume to continue it, or choose another --out")
        if resume and not (run_dir / RUN_FILE).exists() and storage is None:
            raise BadInput(f"--resume: {run_dir} holds no search run ({RUN_FILE} not found)")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"--out {run_dir}: cannot create the run directory ({exc.strerror})") from None
    url = storage or (default_storage(run_dir) if run_dir is not None else None)
    settings = {
        "space": space.ref, "device": lut.device, "device_provenance": lut.provenance, "lut": str(lut.path or ""),
        "budget": budget.to_dict(), "objectives": list(objectives), "strategy": strategy, "sampler": sampler,
        "trials": trials, "seed": seed, "accuracy": accuracy, "proxy": proxy, "accuracy_source": problem.accuracy_source,
        "supernet": str(supernet) if supernet else None, "data": data,
        "mes_alpha": dict(mes_alpha or {}), "mes_unit": dict(mes_unit or {}), "population": population,
        "reference": problem.normaliser.to_dict(), "accuracy_scale": problem.normaliser.accuracy_scale,
        "storage": storage, "storage_url": url or "memory", "study": study_name,
    }
    storage_obj = open_storage(url)
    store = RunStore(storage_obj, study_name, objectives, create=True, settings=settings)
    stored = store.settings
    for key in ("space", "device", "budget", "objectives", "strategy", "accuracy_source", "seed"):
        if stored and stored.get(key) != settings[key]:
            raise BadInput(f"study {study_name!r} was run with {key}={stored.get(key)!r}, not {settings[key]!r}")
    store.refresh()
    observe = getattr(estimator, "observe", None)
    if observe is not None:  # a predictor learns from the run's earlier measurements (resume, shared study)
        measured = [e for e in store.entries if e["accuracy_source"] == estimator.measured_source and e["accuracy"] is not None]
        observe([e["arch"] for e in measured], [e["accuracy"] for e in measured])
    shared = storage is not None
    if resume or shared:
        store.fail_dead_trials()
    salt = 0 if (resume or not store.entries or not shared) else int.from_bytes(os.urandom(4), "little")
    if run_dir is not None:
        _write_run_file(run_dir, settings, command)

    executor = None
    if ray:
        from .ray_search import RayExecutor

        factory = (functools.partial(_estimator_from_ref, accuracy, space.ref, proxy, seed, supernet, data) if made_here
                   else functools.partial(_same, estimator))
        executor = RayExecutor(factory, address=None if ray is True else str(ray))
    ctx = SearchContext(problem, store, trials, seed, salt=salt, shared=shared, progress=progress, executor=executor)
    run_name = str(run_dir) if run_dir is not None else None
    try:
        make_strategy(strategy, sampler, population).run(ctx)
    finally:
        if executor is not None:
            executor.close()
        store.refresh()
        if run_dir is not None:
            write_json_atomic(run_dir / PARETO_FILE, result_of(store, problem.normaliser, settings, run_name).to_dict())
    ctx.report(force=True)
    result = result_of(store, problem.normaliser, settings, run_name)
    result.notes = ctx.notes
    return result


def _estimator_from_ref(accuracy: str, space_ref: str, proxy: str | None, seed: int, supernet: str | None = None,
                        data: str | None = None) -> Any:
    from .accuracy import make_estimator

    options = {"supernet": supernet, "data": data} if accuracy != "proxy" else {}
    return make_estimator(accuracy, search_spaces.load(space_ref), proxy=proxy, seed=seed, **options)


def _same(estimator: Any) -> Any:
    return estimator


def result_of(store: RunStore, normaliser: Normaliser, settings: Mapping[str, Any], run: str | None) -> SearchResult:
    entries, hv = front(store.entries, normaliser)
    return SearchResult(
        run=run, space=settings["space"], device=settings["device"], device_provenance=settings["device_provenance"],
        strategy=settings["strategy"] if settings["strategy"] != "optuna" else f"optuna:{settings['sampler']}",
        budget=dict(settings["budget"]), objectives=tuple(settings["objectives"]), evaluated=store.evaluated,
        feasible=len(store.feasible), hypervolume=hv, reference=normaliser.to_dict(),
        pareto=[public_entry(e, run) for e in entries], history=list(store.entries), normaliser=normaliser,
        settings=dict(settings))


def _write_run_file(run_dir: Path, settings: Mapping[str, Any], command: str | None) -> None:
    from latency_lut.table import atomic_write_text
    from search_spaces.yamlio import dump_yaml

    path = run_dir / RUN_FILE
    data: dict[str, Any] = {}
    if path.exists():
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    commands = list(data.get("commands", []))
    commands.append(command or " ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    data.update(command=commands[0], commands=commands, versions=versions(), settings=dict(settings))
    atomic_write_text(path, dump_yaml(data))


def load_run_settings(run_dir: str | Path) -> dict[str, Any]:
    """The settings a run was started with (``run.yaml``), as ``search`` takes them."""
    import yaml

    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise BadInput(f"{run_dir}: not a search run ({RUN_FILE} not found)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        settings = dict(data["settings"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: not a readable run file ({exc})") from None
    return settings


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], RunStore]:
    """A run's settings (from ``run.yaml``) and its store, read from its storage."""
    settings = load_run_settings(run_dir)
    url = settings.get("storage_url")
    path = Path(run_dir) / RUN_FILE
    if not url or url == "memory":
        raise BadInput(f"{path}: the run kept its trials in memory; nothing to read")
    store = RunStore(open_storage(url), settings.get("study", DEFAULT_STUDY), settings["objectives"], create=False)
    store.refresh()
    return settings, store


def run_result(run_dir: str | Path) -> SearchResult:
    """The current front of a finished or running search (recomputed from its storage)."""
    settings, store = load_run(run_dir)
    normaliser = Normaliser(tuple(settings["objectives"]),
                            {name: settings["reference"][key] for name, key in _reference_keys(settings["objectives"])},
                            float(settings.get("accuracy_scale", 1.0)))
    return result_of(store, normaliser, settings, str(run_dir))


def compare_runs(results: Sequence[SearchResult]) -> dict[str, Any]:
    """Hypervolumes of several runs' fronts against one reference point (see ``common_normaliser``), so
    that runs with different budgets still compare: ``{"common_reference": raw values by metric key,
    "hypervolumes": [one per run, in order]}``. Runs over different objectives are a BadInput."""
    names = [r.run or "(in memory)" for r in results]
    if len({r.objectives for r in results}) > 1:
        raise BadInput("runs with different objectives cannot share a hypervolume reference: "
                       + ", ".join(f"{n} ({','.join(r.objectives)})" for n, r in zip(names, results)))
    normalisers = [r.normaliser for r in results]
    if any(n is None for n in normalisers):
        raise ValueError("compare_runs() needs results from search() or run_result() (they carry their normaliser)")
    common = common_normaliser(normalisers)
    return {"common_reference": common.to_dict(),
            "hypervolumes": [hypervolume(common.costs(r.pareto)) for r in results]}


def _reference_keys(objectives: Sequence[str]) -> list[tuple[str, str]]:
    from .pareto import OBJECTIVES

    return [(name, OBJECTIVES[name][0]) for name in objectives]


__all__ = ["search", "SearchResult", "front", "run_result", "compare_runs", "load_run", "load_run_settings"]
