"""``nas.search``: run a strategy on a problem under budgets, record every trial, return the front.

The flow: check that each budget is achievable at all (exit 3 otherwise), then let the strategy
propose candidates; cheap metrics decide feasibility before any accuracy is estimated; every evaluated
candidate becomes one trial of the run's Optuna study; the front and its hypervolume are computed over
the feasible trials.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import latency_lut
import search_spaces
from search_spaces import Arch, Space

from ..errors import BadInput
from ..estimate import estimator_from_settings
from ..progress import ProgressCallback
from .context import SearchContext
from .problem import Problem
from .ray_tune import RayExecutor, require_ray
from .result import SearchResult, result_of
from .runs import (
    RUN_FILE,
    RunStore,
    default_storage,
    load_run_settings,
    open_storage,
    study_settings,
    write_result,
    write_run_file,
)
from .settings import DEFAULT_STUDY, SearchSettings, check_shared
from .space import SpaceProblem
from .strategies import Strategy, make_strategy, strategy_options


def search(
    target: Space | str | Path | Problem = search_spaces.DEFAULT_SPACE,
    budget: Any = None,
    device: str | None = None,
    *,
    settings: SearchSettings | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    ray: str | bool | None = None,
    progress: ProgressCallback | None = None,
    lut: Any = None,
    estimator: Any = None,
    command: str | None = None,
    **options: Any,
) -> SearchResult:
    """Search `target` (a space, its name or path, or a :class:`~nas.search.Problem`) for the Pareto
    front under `budget` (``{"params": 3e6, "latency_ms": 1.0}``, ``"params=3M latency=1ms"`` or a Budget)
    on `device` (a latency table; the default device when None).

    `options` are the fields of :class:`SearchSettings` (``trials``, ``seed``, ``strategy`` (a name or a
    :class:`~nas.search.strategies.Strategy` object), ``objectives``, ``accuracy``, ``proxy``, ...), or
    pass `settings` whole. With `out`, the run's files go there (``study.db`` unless ``storage`` names an
    Optuna RDB URL, ``run.yaml``, ``pareto.json``); without, the trials stay in memory. `resume`
    continues the run's study to its trial total. A storage and study that already exist are joined:
    several workers then share one study and its trial total. `ray` runs the evaluations as Ray Tune
    trials (an address, or True for a local instance). `lut` and `estimator` replace the device's table
    and the estimator the settings name.
    """
    strategy = options.pop("strategy", None)
    strategy_object = strategy if isinstance(strategy, Strategy) else None
    if strategy_object is not None:
        options.update(strategy=strategy_object.name, **strategy_options(strategy_object))
    elif strategy is not None:
        options["strategy"] = strategy
    if settings is None:
        if isinstance(target, Problem):
            options.setdefault("space", target.name)
            if budget is None:
                budget = target.budget
        elif target is not None:
            options.setdefault("space", target.ref if isinstance(target, Space) else str(target))
        if budget is not None:
            options["budget"] = budget
        if device is not None:
            options["device"] = device
        settings = SearchSettings(**options)
    elif options or budget is not None or device is not None:
        raise TypeError("search(): give either settings= or the options, not both")

    if progress is not None:  # the bar's clock and total from the start, set-up included
        progress(0, settings.total_trials, "search")
    host_note = None
    if isinstance(target, Problem):
        problem, made_here = target, False
        if settings.budget.limits and problem.budget is not settings.budget:
            problem.budget = settings.budget
        run_info = {"device": "", "device_provenance": "", "lut": "", "latency_error_pct": None}
    else:
        space = target if isinstance(target, Space) else search_spaces.load(settings.space)
        lut = lut or latency_lut.load(settings.device)
        lut.check_space(space)
        made_here = estimator is None
        if made_here:
            estimator = estimator_from_settings(settings.to_dict())
        problem = SpaceProblem(space, lut, settings.budget, estimator, settings.objectives, settings.mes_alpha, settings.mes_unit)
        run_info = {
            "device": lut.device,
            "device_provenance": lut.provenance,
            "lut": str(lut.path or ""),
            "latency_error_pct": lut.error_pct,
        }
        host_note = lut.host_notice()
    problem.check_feasible()
    trials = settings.total_trials
    strategy_object = strategy_object or make_strategy(
        settings.strategy, sampler=settings.sampler, population=settings.population
    )

    if ray:
        if not isinstance(problem, SpaceProblem):
            raise BadInput("--ray evaluates architectures of a search space; a problem of one's own runs without it")
        require_ray()
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        _prepare_run_dir(run_dir, resume=resume, shared=settings.storage is not None)
    url = settings.storage or (default_storage(run_dir) if run_dir is not None else None)
    storage_name = None if settings.storage or run_dir is None else str(run_dir / "study.db")
    stored_settings = {
        **settings.to_dict(),
        **run_info,
        "accuracy_source": problem.accuracy_source,
        "accuracy_unit": problem.accuracy_unit,
        "reference": problem.normaliser.to_dict(),
        "accuracy_scale": problem.normaliser.accuracy_scale,
        "storage_url": url or "memory",
        "strategy_config": strategy_object.config(),
    }
    store = RunStore(
        open_storage(url, storage_name),
        settings.study,
        problem.objectives,
        create=True,
        record=problem.to_record,
        decode=problem.from_record,
        settings=stored_settings,
        budget=problem.budget,
        genes=problem.genes(),
        params=problem.trial_params,
    )
    if store.settings:
        check_shared(store.settings, stored_settings, settings.study)
    store.refresh()
    measured = [e for e in store.entries if e.source == problem.estimator.measured_source and e.accuracy is not None]
    problem.estimator.observe([e.candidate for e in measured], [e.accuracy for e in measured])  # resumed, shared runs
    shared = settings.storage is not None
    if resume or shared:
        store.fail_dead_trials()
    salt = store.register_worker() if shared else 0  # each worker of a shared study its own proposals
    if run_dir is not None:
        write_run_file(run_dir, stored_settings, command)

    executor = None
    if ray:
        factory = (
            functools.partial(estimator_from_settings, settings.to_dict())
            if made_here
            else functools.partial(_same, problem.estimator)
        )
        executor = RayExecutor(factory, record=Arch.to_dict, decode=Arch.from_dict, address=None if ray is True else str(ray))
    ctx = SearchContext(problem, store, trials, settings.seed, salt=salt, shared=shared, progress=progress, executor=executor)
    if host_note:
        ctx.note(host_note)
    run_name = str(run_dir) if run_dir is not None else None

    def result() -> SearchResult:
        outcome = result_of(store, problem.normaliser, stored_settings, run_name, problem.to_record, problem.metric_keys)
        outcome.notes = list(ctx.notes)
        if executor is not None:
            outcome.ray_nodes = dict(executor.nodes)
        return outcome

    try:
        ctx.report(force=True)
        strategy_object.run(ctx)
    finally:
        if executor is not None:
            executor.close()
        store.refresh()
        if run_dir is not None:
            write_result(run_dir, result().to_dict())
    ctx.report(force=True)
    return result()


def _prepare_run_dir(run_dir: Path, *, resume: bool, shared: bool) -> None:
    exists = (run_dir / RUN_FILE).exists()
    if exists and not resume and not shared:
        raise BadInput(f"{run_dir} already holds a search run: add --resume to continue it, or choose another --out")
    if resume and not exists and not shared:
        raise BadInput(f"--resume: {run_dir} holds no search run ({RUN_FILE} not found)")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--out {run_dir}: cannot create the run directory ({exc.strerror})") from None


def _same(estimator: Any) -> Any:
    return estimator


def resumed_settings_of(run_dir: str | Path, given: Mapping[str, Any]) -> SearchSettings:
    """The settings to resume the run in `run_dir` with, `given` options (None: not given) applied
    where they may change. A worker of a shared study (`given` names its ``storage``) that was killed
    before it wrote its ``run.yaml`` resumes with the settings the study was created with."""
    if not (Path(run_dir) / RUN_FILE).is_file() and given.get("storage"):
        stored = study_settings(str(given["storage"]), str(given.get("study") or DEFAULT_STUDY))
        return SearchSettings.from_dict(stored).resumed(given)
    return SearchSettings.from_dict(load_run_settings(run_dir)).resumed(given)


__all__ = ["search", "resumed_settings_of"]
