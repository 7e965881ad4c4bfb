"""Progress of long work, reported one way everywhere.

Library code reports through a plain callable, ``progress(done, total, what, **postfix)``: `done` of
`total` units of the phase `what` (a new `what` starts a new phase), with named figures to show
beside the bar. Latency-table builds, validations, block exports, trainings and searches all call it
so; :class:`ProgressBar` is the command line's one implementation (a tqdm bar on stderr).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

#: The progress callback's signature (see the module docstring).
ProgressCallback = Callable[..., None]


class ProgressBar:
    """A tqdm bar on stderr fed by progress callbacks. Each phase (`what`) gets its own bar whose clock
    starts when the phase starts; the elapsed time of the whole task is shown from its start."""

    def __init__(self, unit: str = "item", *, unit_scale: bool = False, file: Any = None):
        self.unit, self.unit_scale, self.file = unit, unit_scale, file or sys.stderr
        self._bar: Any = None
        self._what: str | None = None
        self.started = time.monotonic()

    def __call__(self, done: int, total: int | None, what: str = "", **postfix: Any) -> None:
        from tqdm import tqdm

        if self._bar is None or what != self._what:
            if self._bar is not None:
                self._bar.close()
            self._bar = tqdm(
                total=total,
                initial=done,
                desc=what or None,
                unit=self.unit,
                unit_scale=self.unit_scale,
                file=self.file,
                dynamic_ncols=True,
                smoothing=0.1,
            )
            self._what = what
        bar = self._bar
        if bar.total != total:
            bar.total = total
        bar.n = done
        if postfix:
            bar.set_postfix_str(", ".join(f"{key} {_shown(value)}" for key, value in postfix.items()), refresh=False)
        bar.refresh()

    def write(self, line: str) -> None:
        """A line of text above the bar (or just on stderr when no bar is drawn yet)."""
        if self._bar is not None:
            self._bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


__all__ = ["ProgressBar", "ProgressCallback"]
