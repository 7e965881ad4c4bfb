"""A search run's files and storage: one Optuna study in which every evaluated candidate is one trial.

The study is the single record of a run: objectives are named (``study.set_metric_names``), each
trial's values are the objectives and its user attributes hold the architecture and every metric, so
``optuna-dashboard`` reads any run, ``nas pareto`` recomputes a front from it (also while the search
runs), and ``--resume`` continues from it. Evolution and action trials are written in one transaction
each (``study.add_trial``), so a kill leaves either a whole trial or none. Beside the study, a run
directory holds ``run.yaml`` (the commands, versions and settings) and ``pareto.json`` (the result).
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import search_spaces
from search_spaces import Arch
from search_spaces.errors import first_line
from search_spaces.files import atomic_write_text, read_text
from search_spaces.provenance import versions
from search_spaces.yamlio import dump_yaml, load_data

from ..errors import BadInput
from ..pareto import STANDARD_OBJECTIVES, Normaliser, Objective
from .entry import ACCURACY, EXTRA_KEYS, Entry
from .result import SearchResult, result_of

RUN_FILE = "run.yaml"
PARETO_FILE = "pareto.json"
STUDY_FILE = "study.db"
WORKER_KEY = "worker"
#: A shared study's workers: each joins with a FAIL trial holding this attribute (its process) and
#: ``seed_offset``, the offset of its proposal stream (0 for the study's first trial, else the trial's id).
REGISTRATION_KEY = "worker_registration"
#: A RUNNING trial holding the candidate's id has claimed it: no other worker evaluates it meanwhile.
CLAIM_KEY = "arch_id"
#: Set on a claimed trial that waits for another worker's evaluation of the same candidate.
WAITING_KEY = "waiting"
#: How long a worker waits for another's evaluation of the same candidate before doing it itself.
CLAIM_TIMEOUT_S = 600.0
#: ``RunStore.settle``'s answer for a candidate that another worker is evaluating now.
BUSY = "busy"
#: Optuna's older constraints attribute (a list), the one optuna-dashboard reads; Optuna 5 writes one
#: ``constraints:<name>`` attribute per constraint instead. Trials carry both.
CONSTRAINTS_LIST = "constraints"
#: Reads a stored candidate back: ``decode(data, where)``.
Decode = Callable[[Any, str], Any]


def _optuna():
    """Optuna, with its per-trial logging off and its experimental-feature warnings silenced."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"


#: How a database reports that another process created the same table, type or row a moment before.
_CREATION_RACE = ("already exists", "unique", "duplicate key", "database is locked")
#: Attempts (with growing random pauses) at creating a fresh storage's schema or study while others do.
CREATION_ATTEMPTS = 8


def _racing(exc: BaseException) -> bool:
    return any(word in str(exc).lower() for word in _CREATION_RACE)


def retry_creation(make: Callable[[], Any], give_up: type[BaseException] | tuple[type[BaseException], ...] = ()) -> Any:
    """`make()`, again after a short random pause while it fails because another worker is creating the same
    schema or study (PostgreSQL: a unique violation on ``pg_type``; SQLite: ``table studies already
    exists``). Workers started at the same moment on a fresh storage all get through."""
    for attempt in range(CREATION_ATTEMPTS):
        try:
            return make()
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy wraps each driver's own error types
            if attempt == CREATION_ATTEMPTS - 1 or isinstance(exc, give_up) or not _racing(exc):
                raise
            time.sleep(random.uniform(0.05, 0.2) * 2**attempt)
    raise AssertionError("unreachable")


def open_storage(url: str | None, what: str | None = None):
    """An Optuna storage: in memory for None, otherwise an RDB storage (SQLite, PostgreSQL, MySQL); `what`
    names it in an error (default: the --storage option). Several workers may open a fresh one at once."""
    optuna = _optuna()
    if url is None:
        return optuna.storages.InMemoryStorage()
    sqlite = url.startswith("sqlite")
    kwargs = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    try:
        storage = retry_creation(lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs))
    except ModuleNotFoundError as exc:  # the URL names a driver that is not installed
        extra = ' (pip install "nas-mobile-vit[postgres]")' if url.startswith("postgres") else ""
        raise BadInput(f"{what or f'--storage {url!r}'}: its database driver {exc.name!r} is not installed{extra}") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds for a bad URL
        raise BadInput(f"{what or f'--storage {url!r}'}: cannot open it ({first_line(exc)})") from None
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
    """The trials of one run, read back as :class:`Entry` records; `record` and `decode` turn a candidate
    into the JSON data a trial stores and back."""

    def __init__(
        self,
        storage: Any,
        study_name: str,
        objectives: Sequence[Objective],
        *,
        create: bool,
        record: Callable[[Any], Any],
        decode: Decode,
        settings: dict[str, Any] | None = None,
        budget: Any = None,
        genes: Sequence[Any] = (),
        params: Callable[[Any], dict[str, int]] | None = None,
    ):
        optuna = _optuna()
        # One cache of the study for every Study object of this process (what each would wrap an RDB
        # storage in): a trial this store creates is then known to the strategy's own study too.
        self.storage = optuna.storages.get_storage(storage)
        self.study_name = study_name
        self.records = tuple(objectives)
        self.objectives = tuple(o.name for o in self.records)
        self.record, self.decode = record, decode
        self.budget, self.params = budget, params
        # the genes as Optuna parameters, so the dashboard's importance and slice plots work for every strategy
        self.distributions = {g.name: optuna.distributions.IntDistribution(0, len(g.choices) - 1) for g in genes}
        exists = study_name in {s.study_name for s in optuna.get_all_study_summaries(self.storage)}
        study = self._create(settings) if create and not exists else None
        if study is None:
            if not exists and not create:
                names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(self.storage)) or "none"
                raise BadInput(f"no study {study_name!r} in the storage (studies: {names})")
            study = optuna.load_study(study_name=study_name, storage=self.storage)
            stored = study.metric_names or []  # empty for a moment while another worker creates the study
            if stored and list(stored) != list(self.objectives) and settings is not None:
                raise BadInput(f"study {study_name!r} has objectives {','.join(stored)}, not {','.join(self.objectives)}")
        self.study = study
        self.entries: list[Entry] = []
        self._numbers: set[int] = set()
        self.by_id: dict[str, Entry] = {}
        self._study_id: int | None = None

    def _create(self, settings: dict[str, Any] | None) -> Any | None:
        """A new study with the run's objectives and settings; None when another worker created it first."""
        optuna = _optuna()

        def make() -> Any:
            return optuna.create_study(
                storage=self.storage, study_name=self.study_name, directions=[o.direction for o in self.records]
            )

        try:
            study = retry_creation(make, give_up=optuna.exceptions.DuplicatedStudyError)
        except optuna.exceptions.DuplicatedStudyError:
            return None
        study.set_metric_names(list(self.objectives))
        if settings:
            study.set_user_attr("nas", settings)
        return study

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.study.user_attrs.get("nas", {}))

    # ---- reading -------------------------------------------------------------------------------
    def refresh(self) -> list[Entry]:
        """Read trials completed since the last call (by any worker); returns the new entries."""
        optuna = _optuna()
        new = []
        for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if trial.number in self._numbers or "arch" not in trial.user_attrs:
                continue
            entry = entry_from_attrs(trial.number, trial.user_attrs, self.decode)
            self._numbers.add(trial.number)
            new.append(entry)
            self.by_id.setdefault(entry.id, entry)
        if new:
            self.entries.extend(new)
            self.entries.sort(key=lambda e: e.number)
        return new

    @property
    def evaluated(self) -> int:
        return len(self.entries)

    @property
    def feasible(self) -> list[Entry]:
        return [e for e in self.entries if e.feasible]

    def study_with(self, sampler: Any) -> Any:
        """The run's study, asked through `sampler` (the Optuna strategy's)."""
        return _optuna().load_study(study_name=self.study_name, storage=self.storage, sampler=sampler)

    # ---- writing -------------------------------------------------------------------------------
    def values_of(self, entry: Entry, accuracy_placeholder: float) -> list[float]:
        """The objective values Optuna stores; an infeasible trial (never given an accuracy) carries
        `accuracy_placeholder`, and its ``feasible`` attribute says so."""
        out = []
        for objective in self.records:
            value = entry.metrics.get(objective.key)
            out.append(float(accuracy_placeholder if value is None else value))
        return out

    def add(self, entry: Entry, accuracy_placeholder: float = 0.0) -> Entry:
        """Write one evaluated candidate as a complete trial (one transaction); returns the entry
        with its trial number."""
        optuna = _optuna()
        attrs = attrs_of(entry, self.record(entry.candidate))
        constraints = self.constraints_of(entry)
        params = self.params(entry.candidate) if self.params is not None else {}
        trial = optuna.trial.create_trial(
            values=self.values_of(entry, accuracy_placeholder),
            params=params,
            distributions={name: self.distributions[name] for name in params} if params else None,
            user_attrs=attrs,
            system_attrs={CONSTRAINTS_LIST: list(constraints.values())} if constraints else None,
            constraints=constraints or None,
        )
        # The storage's own call (what study.add_trial does) returns the trial's id, so the new entry is
        # known without reading every trial back.
        trial_id = self.storage.create_new_trial(self._id(), template_trial=trial)
        number = self.storage.get_trial_number_from_id(trial_id)
        recorded = entry.recorded(number)
        if number not in self._numbers:
            self._numbers.add(number)
            self.entries.append(recorded)
            if len(self.entries) > 1 and self.entries[-2].number > number:
                self.entries.sort(key=lambda e: e.number)
            self.by_id.setdefault(recorded.id, recorded)
        return self.by_id[recorded.id]

    def reserve(self, total: int, study: Any = None) -> Any | None:
        """Claim a trial slot in a shared study: a RUNNING trial, or None (and no trial left behind but a
        FAIL one marked ``surplus``) when `total` trials are complete or claimed before it. This keeps
        several workers to the run's total exactly."""
        optuna = _optuna()
        trial = self.new_trial(study or self.study)  # the Optuna strategy asks through its own sampler
        if self.claimed_before(trial.number) >= total:
            trial.set_user_attr("surplus", True)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return None
        return trial

    def new_trial(self, study: Any) -> Any:
        """A new RUNNING trial of `study` (what ``study.ask()`` gives), created with this worker's name in
        the same transaction. Written afterwards, a worker killed between the two writes left a RUNNING
        trial that no resume could tell from a live one: it counted toward the total for ever (seen once
        in a full test run: 59 of 60 trials complete after a killed worker was resumed)."""
        optuna = _optuna()
        trial_id = self._create_running({WORKER_KEY: worker_name()})
        # A study object of its own per trial (over the shared cache), as ``ask`` starts each trial from a
        # fresh read of the study: the sampler then sees every trial finished until now.
        fresh = optuna.Study(study_name=self.study_name, storage=self.storage, sampler=study.sampler)
        return optuna.trial.Trial(fresh, trial_id)

    def register_worker(self) -> int:
        """Join a shared study: a FAIL trial records this process and its proposal stream's offset, which it
        returns (0 for a fresh study's first worker, so that one worker alone proposes as without sharing;
        otherwise the registration trial's storage id, unique to it). Workers started at the same moment
        with one seed thus propose different candidates."""
        name = worker_name()  # as a worker's attribute too, so a worker killed while registering is failed on resume
        trial_id = self._create_running({REGISTRATION_KEY: name, WORKER_KEY: name})
        offset = 0 if self.storage.get_trial_number_from_id(trial_id) == 0 else int(trial_id)
        self.storage.set_trial_user_attr(trial_id, "seed_offset", offset)
        self.storage.set_trial_state_values(trial_id, _optuna().trial.TrialState.FAIL)
        return offset

    def _create_running(self, user_attrs: dict[str, Any]) -> int:
        """A new RUNNING trial holding `user_attrs` from the start (one transaction); returns its id."""
        optuna = _optuna()
        template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs=user_attrs)
        return self.storage.create_new_trial(self._id(), template_trial=template)

    def _id(self) -> int:
        if self._study_id is None:
            self._study_id = self.storage.get_study_id_from_name(self.study_name)
        return self._study_id

    def claim(self, trial: Any, candidate_id: str) -> None:
        """Mark a reserved trial as evaluating `candidate_id` (see :meth:`settle`)."""
        trial.set_user_attr(CLAIM_KEY, candidate_id)

    def release(self, trial: Any, reason: str) -> None:
        """Give a reserved slot back (a FAIL trial saying why), so that it counts toward no total."""
        trial.set_user_attr("released", reason)
        self.study.tell(trial, state=_optuna().trial.TrialState.FAIL)

    def settle(
        self,
        claims: Mapping[int, tuple[Any, str]],
        *,
        wait: bool = True,
        timeout: float = CLAIM_TIMEOUT_S,
        poll: float = 0.25,
    ) -> dict[int, Entry | str | None]:
        """Who evaluates the claimed candidates (trial number -> (trial, candidate id), claimed with
        :meth:`claim`): None where this worker does, the finished entry of another worker's trial to reuse,
        or :data:`BUSY` (only without `wait`) where another worker is evaluating it now.

        A claim is written before the study is read, so two workers can both see each other's claim but
        never both miss it: one that sees none evaluates. Without `wait`, one that sees another's running
        claim gives way at once (both may; the candidate is then left to a later proposal). With `wait` it
        marks itself waiting and waits for that trial to finish, and when every running claim on the
        candidate waits, the lowest trial number evaluates; a worker waits with one claim at a time (an
        Optuna trial), since two batches each waiting on the other would never finish. A candidate is thus
        evaluated once, unless a claim's worker died without a trace for `timeout` seconds (then this
        worker evaluates it).
        """
        optuna = _optuna()
        complete, running = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING
        pending, out, waiting = dict(claims), {}, set()
        ids = {cid for _, cid in pending.values()}
        deadline = time.monotonic() + timeout
        while pending:
            holders: dict[str, list[Any]] = {}
            for t in self.study.get_trials(deepcopy=False, states=(complete, running)):
                if t.user_attrs.get(CLAIM_KEY) in ids:
                    holders.setdefault(t.user_attrs[CLAIM_KEY], []).append(t)
            marked = False
            for number, (trial, cid) in list(pending.items()):
                others = [t for t in holders.get(cid, []) if t.number not in claims]  # this worker's own evaluate once
                if any(t.state == complete and "arch" in t.user_attrs for t in others):
                    self.refresh()
                    out[number] = self.by_id.get(cid)
                elif not (live := [t for t in others if t.state == running]) or time.monotonic() > deadline:
                    out[number] = None
                elif not wait:
                    out[number] = BUSY
                elif number not in waiting:
                    trial.set_user_attr(WAITING_KEY, True)
                    waiting.add(number)
                    marked = True
                    continue
                elif all(t.user_attrs.get(WAITING_KEY) for t in live) and number < min(t.number for t in live):
                    out[number] = None
                else:
                    continue
                del pending[number]
            if pending and not marked:
                self.fail_dead_trials()  # a killed worker's claim on this host ends here, not at the timeout
                time.sleep(poll)
        return out

    def claimed_before(self, number: int) -> int:
        """Trials complete or running (claimed by some worker) with a number below `number`."""
        optuna = _optuna()
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
        return sum(1 for t in self.study.get_trials(deepcopy=False, states=states) if t.number < number)

    def finish(self, trial: Any, entry: Entry, accuracy_placeholder: float = 0.0) -> Entry:
        """Complete a reserved (or asked) trial with an evaluated candidate."""
        for key, value in attrs_of(entry, self.record(entry.candidate)).items():
            trial.set_user_attr(key, value)
        constraints = self.constraints_of(entry)
        for name, value in constraints.items():
            trial.set_constraint(name, value)
        if constraints:  # the older list form too, the one optuna-dashboard (0.21) reads
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self._id(), trial.number)
            self.storage.set_trial_system_attr(trial_id, CONSTRAINTS_LIST, list(constraints.values()))
        self.study.tell(trial, self.values_of(entry, accuracy_placeholder))
        return self.refresh_one(entry)

    def constraints_of(self, entry: Entry) -> dict[str, float]:
        """The budget's constraints of an entry, as Optuna stores them (<= 0: within the limit)."""
        if self.budget is None or not self.budget.limits:
            return {}
        return self.budget.constraints(entry.metrics)

    def refresh_one(self, entry: Entry) -> Entry:
        """Pick up the trial just written (its number is assigned by the storage)."""
        for new in self.refresh():
            if new.id == entry.id:
                return new
        return self.by_id[entry.id]

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


def attrs_of(entry: Entry, record: Any) -> dict[str, Any]:
    """The user attributes of a trial: the candidate's `record` (readable in the dashboard), its id, each
    metric as a number of its own (sortable in the dashboard), where the accuracy came from, whether the
    candidate was within budget (and, when not, why), and what the strategy adds in ``search``."""
    attrs: dict[str, Any] = {"arch": record, "arch_id": entry.id}
    attrs.update({key: value for key, value in entry.metrics.items()})
    attrs.update(accuracy_source=entry.source, feasible=bool(entry.feasible))
    if entry.violations:
        attrs["violations"] = list(entry.violations)
    extra = {key: entry.extra[key] for key in EXTRA_KEYS if entry.extra.get(key) is not None}
    if extra:
        attrs["search"] = extra
    return attrs


#: User attributes of a trial that are not metrics.
_NOT_METRICS = frozenset(
    {"arch", "arch_id", "accuracy_source", "feasible", "violations", "search", WORKER_KEY, "surplus", "metrics"}
    | {WAITING_KEY, "released", REGISTRATION_KEY, "seed_offset"}
)


def entry_from_attrs(number: int, attrs: Mapping[str, Any], decode: Decode) -> Entry:
    """A stored trial's entry (also of runs written before metrics had attributes of their own, which
    kept them together under ``metrics``)."""
    if "metrics" in attrs:
        stored = dict(attrs["metrics"])
        source = stored.pop("accuracy_source", None)
        feasible = bool(stored.pop("feasible", False))
        violations = tuple(stored.pop("violations", []))
    else:
        stored = {k: v for k, v in attrs.items() if k not in _NOT_METRICS}
        source, feasible = attrs.get("accuracy_source"), bool(attrs.get("feasible"))
        violations = tuple(attrs.get("violations", []))
    stored.setdefault(ACCURACY, None)
    candidate = decode(attrs["arch"], f"trial {number}")
    return Entry(candidate, attrs["arch_id"], stored, feasible, violations, source, number, dict(attrs.get("search", {})))


def run_versions() -> dict[str, str]:
    """The library versions a run records."""
    return versions("torch", "numpy", "optuna", "moocore")


def write_run_file(run_dir: Path, settings: Mapping[str, Any], command: str | None) -> None:
    """``run.yaml``: when the run was created, every command that ran it (a resume appends), the
    versions and the settings."""
    path = run_dir / RUN_FILE
    data: dict[str, Any] = {}
    if path.exists():
        data = _read_run_file(path)
    data.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    commands = list(data.get("commands", []))
    commands.append(command or " ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    data.update(command=commands[0], commands=commands, versions=run_versions(), settings=dict(settings))
    atomic_write_text(path, dump_yaml(data))


def write_result(run_dir: Path, result: Mapping[str, Any]) -> None:
    """``pareto.json``."""
    atomic_write_text(run_dir / PARETO_FILE, json.dumps(result, indent=2) + "\n")


def load_run_settings(run_dir: str | Path) -> dict[str, Any]:
    """The settings a run was started with (``run.yaml``)."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise BadInput(f"{run_dir}: not a search run ({RUN_FILE} not found)")
    return _checked_settings(_read_run_file(path).get("settings"), f"{path}: not a readable run file")


def study_settings(url: str, study: str) -> dict[str, Any]:
    """The settings a shared study was created with (the first worker's, stored in the study): what a
    worker killed before it wrote its own ``run.yaml`` resumes with."""
    optuna = _optuna()
    storage = optuna.storages.get_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if study not in names:
        raise BadInput(f"no study {study!r} in the storage (studies: {', '.join(names) or 'none'})")
    stored = optuna.load_study(study_name=study, storage=storage).user_attrs.get("nas")
    return _checked_settings(stored, f"study {study!r}: its stored settings are not readable")


def _checked_settings(settings: Any, what: str) -> dict[str, Any]:
    required = ("space", "objectives", "budget", "strategy", "reference")
    missing = [k for k in required if not isinstance(settings, dict) or k not in settings]
    if missing:
        raise BadInput(f"{what} (no settings {', '.join(missing)})")
    return dict(settings)


def _read_run_file(path: Path) -> dict[str, Any]:
    data = load_data(read_text(path, "run file", BadInput), str(path), BadInput)
    if not isinstance(data, dict):
        raise BadInput(f"{path}: not a readable run file (expected a mapping)")
    return data


def load_run(run_dir: str | Path, problem: Any = None) -> tuple[dict[str, Any], RunStore]:
    """A run's settings (from ``run.yaml``) and its store, read from its storage. A run of a problem of
    one's own needs that `problem` to read its candidates back (by default they are architectures)."""
    settings = load_run_settings(run_dir)
    url, what = run_storage(run_dir, settings)
    if problem is not None:
        objectives, record, decode = problem.objectives, problem.to_record, problem.from_record
    else:
        objectives = [STANDARD_OBJECTIVES[name] for name in settings["objectives"]]
        record, decode = (lambda c: c.to_dict()), _decode_arch
        search_spaces.load(settings["space"])  # the run's own space (a file the run names), so its trials read back
    store = RunStore(
        open_storage(url, what), settings.get("study", "nas-search"), objectives, create=False, record=record, decode=decode
    )
    store.refresh()
    return settings, store


def run_storage(run_dir: str | Path, settings: Mapping[str, Any]) -> tuple[str, str]:
    """Where a run's trials are, and how to name it in an error: the RDB URL the user gave with
    ``--storage``, else the ``study.db`` beside ``run.yaml`` (wherever the directory is now, so a run
    that is copied reads its copy and one that is moved still reads)."""
    if settings.get("storage"):
        return str(settings["storage"]), f"the run's --storage {settings['storage']!r}"
    if settings.get("storage_url") == "memory":
        raise BadInput(f"{Path(run_dir) / RUN_FILE}: the run kept its trials in memory; nothing to read")
    study = Path(run_dir) / STUDY_FILE
    if not study.is_file():
        raise BadInput(f"{run_dir}: no {STUDY_FILE} beside {RUN_FILE} (the run's trials)")
    return default_storage(Path(run_dir)), str(study)


def run_result(run_dir: str | Path, problem: Any = None) -> SearchResult:
    """The current front of a finished or running search (recomputed from its storage); `problem` as
    for :func:`load_run`."""
    settings, store = load_run(run_dir, problem)
    objectives = problem.objectives if problem is not None else settings["objectives"]
    normaliser = Normaliser.from_dict(objectives, settings["reference"], float(settings.get("accuracy_scale", 1.0)))
    if problem is None:
        return result_of(store, normaliser, settings, str(run_dir))
    return result_of(store, normaliser, settings, str(run_dir), problem.to_record, problem.metric_keys)


def _decode_arch(data: Any, where: str) -> Any:
    return Arch.from_dict(data, source=where)


__all__ = [
    "RunStore",
    "RUN_FILE",
    "PARETO_FILE",
    "STUDY_FILE",
    "open_storage",
    "default_storage",
    "worker_name",
    "attrs_of",
    "entry_from_attrs",
    "write_run_file",
    "write_result",
    "load_run_settings",
    "study_settings",
    "run_versions",
    "load_run",
    "run_result",
    "run_storage",
]
