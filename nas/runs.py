"""A search run's storage: one Optuna study in which every evaluated architecture is one trial.

The study is the single record of a run: objectives are named (``study.set_metric_names``), each
trial's values are the objectives and its user attributes hold the architecture and every metric, so
``optuna-dashboard`` reads any run, ``nas pareto`` recomputes a front from it (also while the search
runs), and ``--resume`` continues from it. Evolution and action trials are written in one transaction
each (``study.add_trial``), so a kill leaves either a whole trial or none.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_spaces import Arch

from .errors import BadInput
from .pareto import OBJECTIVES, direction

RUN_FILE = "run.yaml"
PARETO_FILE = "pareto.json"
STUDY_FILE = "study.db"
WORKER_KEY = "worker"
METRIC_KEYS = ("params", "macs", "latency_ms", "mes", "accuracy")
#: what strategies add to a trial: evolution's generation; the action search's step, action and parent trial
EXTRA_KEYS = ("generation", "step", "action", "parent", "duplicate_of")


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - depends on the install
        raise BadInput("the search needs Optuna: pip install 'nas-mobile-vit[search]'") from None
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"


def open_storage(url: str | None):
    """An Optuna storage: in memory for None, otherwise an RDB storage (SQLite, PostgreSQL, MySQL)."""
    optuna = _optuna()
    if url is None:
        return optuna.storages.InMemoryStorage()
    sqlite = url.startswith("sqlite")
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else {})
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds for a bad URL
        raise BadInput(f"--storage {url!r}: cannot open it ({str(exc).splitlines()[0]})") from None
    if sqlite:
        _fast_sqlite(storage.engine)
    return storage


def _fast_sqlite(engine: Any) -> None:
    """Write-ahead logging with ``synchronous=NORMAL``: a commit no longer waits for the disk, and a
    killed process still loses no committed trial (only a power cut could lose the last ones). Optuna
    commits once per suggested parameter, so this is most of the cost of an Optuna trial on SQLite."""
    from sqlalchemy import event

    def on_connect(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with it


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """The trials of one run, read back as entries (dicts with ``number``, ``arch`` and the metrics)."""

    def __init__(self, storage: Any, study_name: str, objectives: Sequence[str], *, create: bool,
                 settings: dict[str, Any] | None = None):
        optuna = _optuna()
        self.storage = storage
        self.study_name = study_name
        self.objectives = tuple(objectives)
        exists = study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if create and not exists:
            self.study = optuna.create_study(storage=storage, study_name=study_name,
                                             directions=[direction(o) for o in self.objectives])
            self.study.set_metric_names(list(self.objectives))
            if settings:
                self.study.set_user_attr("nas", settings)
        elif not exists:
            names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
            raise BadInput(f"no study {study_name!r} in the storage (studies: {names})")
        else:
            self.study = optuna.load_study(study_name=study_name, storage=storage)
            stored = self.study.metric_names or []
            if list(stored) != list(self.objectives) and settings is not None:
                raise BadInput(f"study {study_name!r} has objectives {','.join(stored)}, not {','.join(self.objectives)}")
        self.entries: list[dict[str, Any]] = []
        self._numbers: set[int] = set()
        self.by_id: dict[str, dict[str, Any]] = {}
        self._study_id: int | None = None

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.study.user_attrs.get("nas", {}))

    # ---- reading -------------------------------------------------------------------------------
    def refresh(self) -> list[dict[str, Any]]:
        """Read trials completed since the last call (by any worker); returns the new entries."""
        optuna = _optuna()
        new = []
        for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if trial.number in self._numbers or "arch" not in trial.user_attrs:
                continue
            entry = entry_from_attrs(trial.number, trial.user_attrs)
            self._numbers.add(trial.number)
            new.append(entry)
            self.by_id.setdefault(entry["arch_id"], entry)
        if new:
            self.entries.extend(new)
            self.entries.sort(key=lambda e: e["number"])
        return new

    @property
    def evaluated(self) -> int:
        return len(self.entries)

    @property
    def feasible(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["feasible"]]

    def count_complete(self) -> int:
        """Completed trials in the storage now (all workers), without reading them."""
        optuna = _optuna()
        return len(self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))

    # ---- writing -------------------------------------------------------------------------------
    def values_of(self, entry: dict[str, Any], accuracy_placeholder: float) -> list[float]:
        """The objective values Optuna stores; an infeasible trial (never given an accuracy) carries
        `accuracy_placeholder`, and its ``feasible`` attribute says so."""
        out = []
        for name in self.objectives:
            key = OBJECTIVES[name][0]
            value = entry.get(key)
            out.append(float(accuracy_placeholder if value is None else value))
        return out

    def add(self, entry: dict[str, Any], accuracy_placeholder: float = 0.0) -> dict[str, Any]:
        """Write one evaluated architecture as a complete trial (one transaction); returns the entry
        with its trial number."""
        optuna = _optuna()
        attrs = attrs_of(entry)
        trial = optuna.trial.create_trial(values=self.values_of(entry, accuracy_placeholder), user_attrs=attrs)
        if self._study_id is None:
            self._study_id = self.storage.get_study_id_from_name(self.study_name)
        # The storage's own call (what study.add_trial does) returns the trial's id, so the new entry is
        # known without reading every trial back.
        trial_id = self.storage.create_new_trial(self._study_id, template_trial=trial)
        number = self.storage.get_trial_number_from_id(trial_id)
        recorded = entry_from_attrs(number, attrs, arch=entry["arch"])
        if number not in self._numbers:
            self._numbers.add(number)
            self.entries.append(recorded)
            if len(self.entries) > 1 and self.entries[-2]["number"] > number:
                self.entries.sort(key=lambda e: e["number"])
            self.by_id.setdefault(recorded["arch_id"], recorded)
        return self.by_id[recorded["arch_id"]]

    def reserve(self, total: int, study: Any = None) -> Any | None:
        """Claim a trial slot in a shared study: a RUNNING trial, or None (and no trial left behind but a
        FAIL one marked ``surplus``) when `total` trials are complete or claimed before it. This keeps
        several workers to the run's total exactly."""
        optuna = _optuna()
        study = study or self.study  # the Optuna strategy asks through its own sampler
        trial = study.ask()
        trial.set_user_attr(WORKER_KEY, worker_name())
        if self.claimed_before(trial.number) >= total:
            trial.set_user_attr("surplus", True)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return None
        return trial

    def claimed_before(self, number: int) -> int:
        """Trials complete or running (claimed by some worker) with a number below `number`."""
        optuna = _optuna()
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
        return sum(1 for t in self.study.get_trials(deepcopy=False, states=states) if t.number < number)

    def finish(self, trial: Any, entry: dict[str, Any], accuracy_placeholder: float = 0.0,
               constraints: dict[str, float] | None = None) -> dict[str, Any]:
        """Complete a reserved (or asked) trial with an evaluated architecture."""
        for key, value in attrs_of(entry).items():
            trial.set_user_attr(key, value)
        for name, value in (constraints or {}).items():
            trial.set_constraint(name, value)
        self.study.tell(trial, self.values_of(entry, accuracy_placeholder))
        return self.refresh_one(entry)

    def refresh_one(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Pick up the trial just written (its number is assigned by the storage)."""
        for new in self.refresh():
            if new["arch_id"] == entry["arch_id"]:
                return new
        return self.by_id[entry["arch_id"]]

    def fail_dead_trials(self) -> int:
        """Mark RUNNING trials left by killed processes of this host as FAIL (others may be live workers
        elsewhere; Optuna's heartbeat covers those when enabled). Returns how many were failed."""
        optuna = _optuna()
        host = socket.gethostname()
        failed = 0
        for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            worker = str(trial.user_attrs.get(WORKER_KEY, ""))
            name, _, pid = worker.rpartition(":")
            if name == host and pid.isdigit() and not _pid_alive(int(pid)):
                self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                failed += 1
        return failed


def attrs_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The user attributes of a trial: the architecture (readable in the dashboard), its id, every metric
    in one ``metrics`` attribute and what the strategy adds in ``search``. Few attributes keep a trial's
    write cheap (each attribute is a row of the storage)."""
    metrics = {key: entry.get(key) for key in METRIC_KEYS}
    metrics.update(accuracy_source=entry.get("accuracy_source"), feasible=bool(entry["feasible"]),
                   violations=list(entry.get("violations", [])))
    attrs = {"arch": entry["arch"].to_dict(), "arch_id": entry["arch"].id, "metrics": metrics}
    extra = {key: entry[key] for key in EXTRA_KEYS if entry.get(key) is not None}
    if extra:
        attrs["search"] = extra
    return attrs


def entry_from_attrs(number: int, attrs: dict[str, Any], arch: Arch | None = None) -> dict[str, Any]:
    """A trial's entry; `arch`, when the caller holds it already, saves parsing it again."""
    metrics = attrs.get("metrics", {})
    entry = {key: metrics.get(key) for key in METRIC_KEYS}
    arch = arch if arch is not None else Arch.from_dict(attrs["arch"], source=f"trial {number}")
    entry.update(number=number, arch=arch, arch_id=attrs["arch_id"],
                 accuracy_source=metrics.get("accuracy_source"), feasible=bool(metrics.get("feasible")),
                 violations=list(metrics.get("violations", [])))
    entry.update(attrs.get("search", {}))
    return entry


def public_entry(entry: dict[str, Any], run: str | None) -> dict[str, Any]:
    """An entry as SPEC's JSON shows it (``id`` is ``RUN_DIR#N``, N the trial number)."""
    out = {"id": f"{run}#{entry['number']}" if run else f"#{entry['number']}", "arch": entry["arch"].to_dict()}
    for key in METRIC_KEYS:
        out[key] = entry[key]
    out["accuracy_source"] = entry["accuracy_source"]
    return out


def versions() -> dict[str, str]:
    import numpy
    import torch

    out = {"python": sys.version.split()[0], "torch": str(torch.__version__), "numpy": str(numpy.__version__)}
    try:
        from importlib.metadata import version

        out["nas"] = version("nas-mobile-vit")
        out["optuna"] = version("optuna")
        out["moocore"] = version("moocore")
    except Exception:  # noqa: BLE001 - an uninstalled checkout still runs
        pass
    return out


def write_json_atomic(path: Path, data: Any) -> None:
    from latency_lut.table import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
