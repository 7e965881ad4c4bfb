"""A deterministic, instant accuracy stand-in for tests and strategy benchmarks (not for real searches).

Comparing strategies needs an accuracy that costs nothing and never changes, so that a whole space
can be scored exhaustively and every difference between runs is the strategy's. This one rises with
log-capacity (parameters and MACs) with diminishing returns, rewards attention mixers in the later
stages more than in the early ones, and adds a fixed ripple hashed from the architecture's encoding,
so the landscape is not perfectly smooth. Its ``name`` says what it is, so it never passes for a real
estimate. It is vectorised over encoded architectures for exhaustive scoring.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

import supernet
from search_spaces import Arch, Space

from .base import Estimator

_MIXER_BONUS = {"none": 0.0, "separable": 0.25, "additive": 0.35, "sepvit": 0.45, "mhsa": 0.5}


class SyntheticAccuracy(Estimator):
    """Pseudo top-1 in percent; a deterministic function of the architecture."""

    name = "synthetic"
    unit = "top-1 % (synthetic)"

    def __init__(self, space: Space, ripple: float = 0.4):
        self.space, self.ripple = space, ripple
        counts = supernet.count_tables(space)
        self._params, self._macs = counts["params"], counts["macs"]
        genes = space.genes()
        n = len(space.stages)
        columns = space.gene_columns()
        index = space.gene_index()
        # mixer bonus per (gene column, choice): later stages gain more from attention; a block's bonus
        # counts while the block is in use (its index below its stage's depth)
        self._bonus = [
            (
                i,
                columns[index["depth", gene.stage]],
                gene.stage - 1,
                gene.block,
                np.array([_MIXER_BONUS[m] * gene.stage / n for m in gene.choices]),
            )
            for i, gene in enumerate(genes)
            if gene.field == "mixer"
        ]
        self._hash = np.random.default_rng(12345).integers(1, 2**31 - 1, size=len(genes))

    def scores(self, codes: np.ndarray) -> np.ndarray:
        """Scores of encoded architectures (rows of ``space.encode``)."""
        codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
        params, macs = self._params.total(codes)[0], self._macs.total(codes)[0]
        capacity = 0.6 * np.log(params) + 0.4 * np.log(macs)
        base = 90.0 - 75.0 * np.exp(-(capacity - 12.0) / 2.5)
        bonus = np.zeros(len(codes))
        for col, depth_col, stage, block, table in self._bonus:
            depth = np.array(self.space.stages[stage].depths)[codes[:, depth_col]]
            bonus += np.where(block < depth, table[codes[:, col]], 0.0)
        h = (codes * self._hash).sum(axis=1) % 1_000_003
        ripple = (np.sin(h * 12.9898) * 43758.5453) % 1.0
        return np.round(base + 1.5 * np.tanh(bonus / 2) + (ripple - 0.5) * 2 * self.ripple, 6)

    def estimate(self, archs: Sequence[Arch]) -> list[float]:
        if not archs:
            return []
        return self.scores(np.array([self.space.encode(a) for a in archs])).tolist()


def enumerate_codes(space: Space) -> np.ndarray:
    """Every architecture of an enumerable space, encoded (unused block genes 0), one row each: the
    ground truth of exhaustive fronts in tests and benchmarks."""
    per_stage = []
    for st in space.stages:
        rows = []
        for d_i, depth in enumerate(st.depths):
            blocks = list(itertools.product(range(len(st.ratios)), range(len(st.mixers))))
            for w_i in range(len(st.widths)):
                for combo in itertools.product(blocks, repeat=depth):
                    genes = [d_i, w_i]
                    for b in range(max(st.depths)):
                        genes += list(combo[b]) if b < depth else [0, 0]
                    rows.append(genes)
        per_stage.append(np.array(rows, dtype=np.int64))
    out = np.zeros((1, 0), dtype=np.int64)
    for rows in per_stage:
        out = np.concatenate([np.repeat(out, len(rows), axis=0), np.tile(rows, (len(out), 1))], axis=1)
    return np.concatenate(
        [np.repeat(np.arange(len(space.resolutions)), len(out))[:, None], np.tile(out, (len(space.resolutions), 1))], axis=1
    )


__all__ = ["SyntheticAccuracy", "enumerate_codes"]
