"""Stopping a training cleanly on SIGINT or SIGTERM: the step under way finishes and is saved.

Checkpoints are written every ``save_every`` steps (200 by default) and at the end of each epoch; a
process killed between two of them loses every step since the last: up to 21 minutes of the accuracy
study's supernet on two CPU cores (6.4 s a step of 128 images). While a training runs, the first SIGINT (Ctrl-C) or
SIGTERM (what ``kill``, batch schedulers and torchrun's agent send) only sets a flag that the loop reads
after each step: it then saves that step and raises :class:`TrainingInterrupted`, and ``--resume``
continues exactly from it. A second signal interrupts at once, as it would without the handler.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal after saving its last finished step (the message says where)."""


class StopRequest:
    """A context in which SIGINT and SIGTERM ask the training loop to stop after its current step.

    Handlers are installed only in the main thread (Python runs them there; elsewhere the request can
    never be made) and the previous ones are restored on exit.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in _SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # asked twice: stop now, losing the step under way
            raise KeyboardInterrupt
        self.signal = number


def ignore_interrupts_in_worker(_worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: Ctrl-C reaches every process of the terminal's group, and a worker
    it killed would fail the main process's next batch before it could save; the main process alone
    decides when to stop, and shuts its workers down itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


__all__ = ["StopRequest", "TrainingInterrupted", "ignore_interrupts_in_worker"]
