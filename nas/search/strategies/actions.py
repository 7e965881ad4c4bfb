"""EfficientFormerV2's search: shrink the largest candidate, one action at a time, until it fits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import Strategy

if TYPE_CHECKING:
    from ..context import SearchContext


class ActionSearch(Strategy):
    """From the largest candidate, evaluate every shrinking action (architectures: remove or slim a
    block, narrow a stage, lower an FFN ratio, lower the resolution) and apply the one with the smallest
    accuracy drop per efficiency gained (MES); repeat until every budget holds. Each evaluated candidate
    is a trial (``step``, ``action``, ``parent``), so the path and every point on it are in the storage.
    A resumed run replays the path from the stored trials without evaluating any of them again."""

    name = "actions"
    default_trials = None  # it stops when the budget holds: a path of finite length, each step shrinks

    def run(self, ctx: SearchContext) -> None:
        problem, store = ctx.problem, ctx.store
        start = problem.cheap([problem.start()])[0]
        current = store.by_id.get(start.id)
        if current is None:
            recorded = ctx.evaluate([start], step=0, action="start", force_accuracy=True)
            if not recorded:
                return
            current = recorded[0]
        step = 0
        while not current.feasible:
            step += 1
            actions = problem.shrink_actions(current.candidate)
            if not actions:
                ctx.note("actions: nothing left to shrink")
                return
            candidates = [c.with_extra(action=name) for (name, _), c in zip(actions, problem.cheap([a for _, a in actions]))]
            gains = [problem.efficiency(c.metrics) - problem.efficiency(current.metrics) for c in candidates]
            useful = [(c, g) for c, g in zip(candidates, gains) if g > 0] or list(zip(candidates, gains))
            new = [c for c, _ in useful if c.id not in store.by_id]
            if new:  # one batch per step: with --ray the candidates are evaluated in parallel
                recorded = ctx.evaluate(new, step=step, parent=current.number, force_accuracy=True)
                if len(recorded) < len(new):
                    ctx.note(f"actions: the trial limit was reached at step {step} before every budget held; raise --trials")
                    return
            evaluated = [(store.by_id[c.id], gain) for c, gain in useful]
            drop_per_gain = [((current.accuracy - e.accuracy) / g if g > 0 else np.inf) for e, g in evaluated]
            current = evaluated[int(np.argmin(drop_per_gain))][0]


__all__ = ["ActionSearch"]
