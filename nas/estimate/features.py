"""Architectures as features for accuracy models: the predictor estimator's and the evolution's
surrogate both see an architecture the same way.

One column per (gene, choice) of the genes in use (a block's genes past its stage's depth are zero,
so a missing block contributes nothing), plus log parameters and log MACs from the space's cost
tables, the two quantities accuracy follows most closely.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import supernet
from search_spaces import Arch, Space


class Features:
    """The feature matrix of encoded architectures of one space (see the module docstring)."""

    def __init__(self, space: Space):
        self.space = space
        genes = space.genes()
        counts = supernet.count_tables(space)
        self._params, self._macs = counts["params"], counts["macs"]
        self._sizes = [len(gene.choices) for gene in genes]
        self._memo: dict[str, list[int]] = {}
        columns = space.gene_columns()
        index = space.gene_index()
        # for each block gene: (its stage's depth column, the depth choices, the block index)
        self._block = {
            i: (columns[index["depth", gene.stage]], np.array(space.stages[gene.stage - 1].depths), gene.block)
            for i, gene in enumerate(genes)
            if gene.block is not None
        }

    def codes(self, archs: Sequence[Arch]) -> np.ndarray:
        """The integer encodings (memoised by architecture id: a search encodes the same ones again and again)."""
        memo = self._memo
        for a in archs:
            if a.id not in memo:
                memo[a.id] = self.space.encode(a)
        return np.array([memo[a.id] for a in archs], dtype=np.int64).reshape(len(archs), len(self._sizes))

    def log_counts(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log parameters and log MACs of encoded architectures."""
        return np.log(self._params.total(codes)[0]), np.log(self._macs.total(codes)[0])

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        """One-hot genes in use, then log parameters and log MACs: shape (n, sum(choices) + 2)."""
        codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
        columns = []
        for i, size in enumerate(self._sizes):
            onehot = np.eye(size)[codes[:, i]]
            if i in self._block:
                depth_col, depths, block = self._block[i]
                onehot *= (block < depths[codes[:, depth_col]])[:, None]
            columns.append(onehot)
        log_params, log_macs = self.log_counts(codes)
        return np.concatenate(columns + [log_params[:, None], log_macs[:, None]], axis=1)

    def design(self, codes: np.ndarray) -> np.ndarray:
        """The features plus the squares and product of the two log counts (accuracy saturates with
        capacity): the design matrix of the evolution's ridge surrogate."""
        x = self(codes)
        lp, lm = x[:, -2], x[:, -1]
        return np.concatenate([x, (lp * lp)[:, None], (lm * lm)[:, None], (lp * lm)[:, None]], axis=1)


__all__ = ["Features"]
