"""The timing protocol, robust to this kind of machine's episodic 30-50% slowdowns.

Every module is prepared once (exported, compiled, warmed up); then the modules are timed in several
*passes*; within a pass each module runs a chunk of back-to-back inferences (sized to ~``chunk_ms``)
in a freshly shuffled order, and the chunk's median is recorded. A module's latency is the median of
its pass medians, and its spread the interquartile range of those medians. A slowdown that lasts a
few seconds hits every module's one chunk in that pass, and the median over passes discards it.

A sustained change (another process holding the other core for minutes: -17 to -22% here) is not
discarded that way. With `reference` runners among the modules, each pass also gives every module its
*ratio* to the geometric mean of the references' chunks of the same pass; a table built and validated
in units of fixed reference modules keeps its figures when the whole machine slows or speeds up (several
references of different sizes, because one reference moves against the rest: see
``latency_lut.build.reference_archs``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .backends import Runner


@dataclass
class Timing:
    ms: float  # median of the pass medians
    spread_ms: float  # interquartile range of the pass medians
    passes: int
    iters: int  # inferences per pass
    ratio: float | None = None  # median over passes of (this pass's chunk / the reference's chunk)
    pass_ms: list[float] = field(default_factory=list, repr=False)  # the pass medians, in pass order

    def to_dict(self) -> dict:
        out = {"ms": round(self.ms, 6), "spread_ms": round(self.spread_ms, 6), "passes": self.passes, "iters": self.iters}
        return out if self.ratio is None else {**out, "ratio": round(self.ratio, 9)}


def _chunk(run: Runner, iters: int) -> float:
    times = np.empty(iters)
    for i in range(iters):
        start = time.perf_counter()
        run()
        times[i] = time.perf_counter() - start
    return float(np.median(times)) * 1e3


def measure_interleaved(
    runners: dict[str, Runner],
    passes: int = 7,
    chunk_ms: float = 25.0,
    warmup_ms: float = 30.0,
    seed: int = 0,
    on_pass: Callable[[int], None] | None = None,
    reference: str | Sequence[str] | None = None,
) -> dict[str, Timing]:
    """Time every runner with the interleaved protocol of this module's docstring; with `reference` (the
    key of one of the runners, or several) every timing also carries its ratio to that runner (to the
    geometric mean of those runners), pass by pass."""
    references = [reference] if isinstance(reference, str) else list(reference or ())
    missing = [key for key in references if key not in runners]
    if missing:
        raise ValueError(f"reference {missing[0]!r} is not one of the runners")
    rng = random.Random(seed)
    iters: dict[str, int] = {}
    for key, run in runners.items():  # warm-up, and size each chunk from the warm-up speed
        start, count = time.perf_counter(), 0
        while count < 3 or (time.perf_counter() - start) * 1e3 < warmup_ms:
            run()
            count += 1
            if count >= 2000:
                break
        per_call = (time.perf_counter() - start) * 1e3 / count
        # as many inferences as fill ~chunk_ms (rounded, at least one): a module slower than that, a whole
        # model, runs once per pass (the median over passes already discards a slow pass; three a pass, the
        # earlier minimum, tripled a fitted table's timing time)
        iters[key] = int(min(500, max(1, round(chunk_ms / max(per_call, 1e-4)))))
    samples: dict[str, list[float]] = {key: [] for key in runners}
    order = list(runners)
    for p in range(passes):
        rng.shuffle(order)
        for key in order:
            samples[key].append(_chunk(runners[key], iters[key]))
        if on_pass:
            on_pass(p)
    unit = reference_unit([samples[key] for key in references]) if references else None
    out = {}
    for key, values in samples.items():
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        ratio = None if unit is None else float(np.median(np.array(values) / unit))
        out[key] = Timing(float(med), float(q3 - q1), passes, iters[key], ratio, list(values))
    return out


def reference_unit(pass_ms: Sequence[Sequence[float]]) -> np.ndarray:
    """The unit several reference modules make, pass by pass: the geometric mean of their pass medians
    (one row per reference, one column per pass)."""
    return np.exp(np.mean(np.log(np.asarray(pass_ms, dtype=float)), axis=0))


__all__ = ["Timing", "measure_interleaved", "reference_unit"]
