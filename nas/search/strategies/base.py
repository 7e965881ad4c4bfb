"""The strategy protocol: propose candidates, hand them to the search context, stop at its total.

Every strategy proposes from a generator seeded by the run's seed and its position (generation, step,
trials stored), and its proposals depend only on what is already stored, so a resumed run proposes
exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..context import SearchContext


class Strategy(abc.ABC):
    """A search strategy. ``run(ctx)`` evaluates candidates through ``ctx.evaluate`` (or, for Optuna's
    ask-and-tell, ``ctx.finish_trials``) until ``ctx.remaining()`` is 0 or it has nothing left to try."""

    #: The name ``--strategy`` takes.
    name: ClassVar[str]
    #: The trial total when the user gives none (None: the strategy stops by itself).
    default_trials: ClassVar[int | None] = 500

    @abc.abstractmethod
    def run(self, ctx: SearchContext) -> None:
        """Search until the context's trial total is reached."""

    def config(self) -> dict[str, Any]:
        """The strategy's settings as plain data (recorded with the run)."""
        return {}


__all__ = ["Strategy"]
