"""What a strategy sees while it runs: the problem, the run's store, the trial total and the seed.

The context evaluates and records candidates for the strategies: only those within budget get an
accuracy estimate (screened by the estimator when it can guess, see ``Estimator.screen``), each becomes
one trial of the run's Optuna study, and the run stops at exactly its trial total, also when several
workers share the study.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..pareto import pareto_mask
from ..progress import ProgressCallback
from .entry import Entry
from .problem import Problem
from .result import front
from .runs import BUSY, RunStore, worker_name


class SearchContext:
    """A run in progress (see the module docstring)."""

    def __init__(
        self,
        problem: Problem,
        store: RunStore,
        trials: int | None,
        seed: int,
        *,
        salt: int = 0,
        shared: bool = False,
        progress: ProgressCallback | None = None,
        executor: Any = None,
    ):
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
        trial = self.store.reserve(self.trials if self.trials is not None else sys.maxsize, study)
        if trial is None:
            self.exhausted = True
        return trial

    def remaining(self) -> int:
        if self.exhausted:
            return 0
        if self.shared:
            self.store.refresh()  # other workers' trials count toward the same total
        if self.trials is None:  # the strategy stops by itself
            return sys.maxsize
        return max(0, self.trials - self.store.evaluated)

    # ---- evaluation ------------------------------------------------------------------------------
    def evaluate(self, entries: Sequence[Entry], *, force_accuracy: bool = False, **extra: Any) -> list[Entry]:
        """Estimate the accuracy of those within budget (all, with `force_accuracy`), record each as a
        trial (with `extra` strategy attributes), and return the recorded entries; stops early at the
        run's trial total."""
        batch = [e.with_extra(**extra) for e in entries]
        if self.shared:  # one claim per candidate (repeats in a batch are the same candidate)
            batch = list({e.id: e for e in batch}.values())
        batch = batch[: self.remaining()]
        slots = []
        reused: dict[str, Entry] = {}
        if self.shared:  # claim the slots first, so that workers stop at the total and do not race
            for _ in batch:
                trial = self.reserve()
                if trial is None:
                    break
                slots.append(trial)
            batch = batch[: len(slots)]
            batch, slots, reused, released = self._settle(batch, slots)
            if released:  # slots given back: the total may be open again, and this worker must fill it
                self.exhausted = False
        if not batch:
            return list(reused.values())
        wanted = [e for e in batch if force_accuracy or e.feasible]
        accuracy = self._estimate(wanted, screen=not force_accuracy)
        recorded = []
        placeholder = self.problem.placeholder_accuracy()
        for i, e in enumerate(batch):
            value, source = accuracy.get(e.id, (None, self.problem.accuracy_source))
            e = e.with_accuracy(value, source)
            recorded.append(self.store.finish(slots[i], e, placeholder) if slots else self.store.add(e, placeholder))
            self.report()
        return recorded + list(reused.values())

    def _settle(self, batch: list[Entry], slots: list[Any]) -> tuple[list[Entry], list[Any], dict[str, Entry], int]:
        """Claim each reserved slot's candidate in the shared study and keep those this worker evaluates (see
        ``RunStore.settle``): a candidate another worker evaluated gives its slot back and is returned with
        that worker's values; one another worker is evaluating now gives its slot back and is left out
        (its result reaches this worker's history when it is done). Also returns how many slots went back."""
        for trial, entry in zip(slots, batch):
            self.store.claim(trial, entry.id)
        settled = self.store.settle({t.number: (t, e.id) for t, e in zip(slots, batch)}, wait=False)
        keep, kept_slots, reused, released = [], [], {}, 0
        for trial, entry in zip(slots, batch):
            done = settled[trial.number]
            if done is None:
                keep.append(entry)
                kept_slots.append(trial)
                continue
            released += 1
            if done is BUSY:
                self.store.release(trial, "evaluated by another worker now")
            else:
                self.store.release(trial, f"evaluated in trial {done.number}")
                reused[entry.id] = done
        return keep, kept_slots, reused, released

    def _measure(self, candidates: Sequence[Any]) -> list[float]:
        """Accuracy measurements: here, or on the executor's workers (then the driver's estimator learns
        from them, so a predictor screens with what the workers measured)."""
        if not candidates:
            return []
        if self.executor is not None:
            values = self.executor.map(candidates)
            self.problem.estimator.observe(candidates, values)
            return values
        return self.problem.accuracy(candidates)

    def _estimate(self, entries: Sequence[Entry], screen: bool = True) -> dict[str, tuple[float, str]]:
        """(accuracy, source) per candidate id. Screened, the estimator may keep guesses for candidates
        its guess does not put on the Pareto front of everything evaluated so far."""
        unique = list({e.id: e for e in entries}.values())
        if not unique:
            return {}
        estimator = self.problem.estimator
        candidates = [e.candidate for e in unique]
        if screen:

            def joins_front(predicted: np.ndarray) -> np.ndarray:
                known = [e for e in self.store.entries if e.feasible and e.accuracy is not None]
                guessed = [{**e.metrics, "accuracy": float(v)} for e, v in zip(unique, predicted)]
                return pareto_mask(self.problem.costs([k.metrics for k in known] + guessed))[len(known) :]

            values, sources = estimator.screen(candidates, joins_front, self._measure)
        else:
            values = self._measure(candidates)
            sources = [estimator.measured_source] * len(values)
        return {e.id: (float(v), s) for e, v, s in zip(unique, values, sources)}

    # ---- Optuna's ask and tell -------------------------------------------------------------------
    def ask(self, study: Any) -> tuple[Any, Entry] | None:
        """A new trial of `study` (a reserved slot when the study is shared) with the candidate its
        sampler suggests, as an entry with cheap metrics; None when the total is reached."""
        # named with its worker from the start, so a resume can tell a killed worker's trial from a live one
        trial = self.reserve(study) if self.shared else self.store.new_trial(study)
        if trial is None:
            return None
        codes = [trial.suggest_int(gene.name, 0, len(gene.choices) - 1) for gene in self.problem.genes()]
        entry = self.problem.cheap([self.problem.decode(codes)])[0]
        if self.shared:
            self.store.claim(trial, entry.id)
        return trial, entry

    def finish_trials(self, asked: Sequence[tuple[Any, Entry]]) -> None:
        """Finish asked trials: estimate the accuracy of the new candidates within budget (one batch),
        and tell each trial. A repeat of a candidate already evaluated reuses its metrics (it is not
        estimated again) and is marked ``duplicate_of``."""
        if self.shared:  # wait for another worker's evaluation of the same candidate rather than repeat it
            self.store.settle({t.number: (t, e.id) for t, e in asked})
        wanted = [e for _, e in asked if e.feasible and e.id not in self.store.by_id]
        accuracy = self._estimate(wanted)
        for trial, entry in asked:
            done = self.store.by_id.get(entry.id)
            if done is not None:
                entry = entry.with_accuracy(done.accuracy, done.source).with_extra(duplicate_of=done.number)
            else:
                entry = entry.with_accuracy(*accuracy.get(entry.id, (None, self.problem.accuracy_source)))
            self.store.finish(trial, entry, self.problem.placeholder_accuracy())
            self.report()

    # ---- progress --------------------------------------------------------------------------------
    def report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_report > 0.5:
            self._last_report = now
            entries, hv = front(self.store.entries, self.problem.normaliser)
            self._front_size, self._hypervolume = len(entries), hv
        evaluated = self.store.evaluated
        share = len(self.store.feasible) / evaluated if evaluated else 0.0
        self.progress(
            evaluated, self.trials, "search", feasible=f"{share:.0%}", front=self._front_size, HV=f"{self._hypervolume:.4f}"
        )


__all__ = ["SearchContext"]
