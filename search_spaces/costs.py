"""Additive per-layer costs over a space's integer encoding: vectorised totals and exact minima.

Latency from a table, parameters and MACs are all sums over an architecture's layers. A
:class:`CostTables` holds, per gene, the cost each choice contributes, filled by laying out probe
architectures with the space's own layout code (so it reads the same layers as ``arch.layers()``).
It then sums the cost of many encoded architectures at once, and finds the cheapest architecture of
the space by dynamic programming over the chain of stage widths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .layers import LayerSpec

if TYPE_CHECKING:
    from .arch import Arch
    from .space import Space


@dataclass
class _StageCosts:
    depths: np.ndarray  # depth choices
    block: np.ndarray  # [res, width, ratio, mixer]: FFN + mixer cost of one block
    layers_per_block: np.ndarray  # [mixer]: 1 for an FFN-only block, 2 with a mixer
    down: np.ndarray | None  # [res, previous width, width]


class CostTables:
    """Per-gene cost arrays of an additive per-layer cost on one space."""

    def __init__(self, space: Space, cost: Callable[[LayerSpec], float]):
        self.space = space
        genes = space.genes()
        self.n_genes = len(genes)
        col = {gene.name: i for i, gene in enumerate(genes)}
        base = [0] * len(genes)

        def probe(updates: dict[str, int], layer_name: str) -> float:
            codes = list(base)
            for gene, value in updates.items():
                codes[col[gene]] = value
            spec = next(s for s in space.decode(codes).layers() if s.name == layer_name)
            return float(cost(spec))

        n_res, stages = len(space.resolutions), space.stages
        last = len(stages)
        self.stem = np.array(
            [[probe({"resolution": r, "s1.width": w}, "stem") for w in range(len(stages[0].widths))] for r in range(n_res)]
        )
        self.head = np.array(
            [[probe({"resolution": r, f"s{last}.width": w}, "head") for w in range(len(stages[-1].widths))] for r in range(n_res)]
        )
        self.stages: list[_StageCosts] = []
        for s, st in enumerate(stages, 1):
            block = np.zeros((n_res, len(st.widths), len(st.ratios), len(st.mixers)))
            down = np.zeros((n_res, len(stages[s - 2].widths), len(st.widths))) if s > 1 else None
            for r in range(n_res):
                for w in range(len(st.widths)):
                    at = {"resolution": r, f"s{s}.width": w}
                    ffn = [probe({**at, f"s{s}.b0.ratio": e}, f"stage{s}_block0_ffn") for e in range(len(st.ratios))]
                    mixer = [
                        0.0 if m == "none" else probe({**at, f"s{s}.b0.mixer": i}, f"stage{s}_block0_mixer")
                        for i, m in enumerate(st.mixers)
                    ]
                    block[r, w] = np.add.outer(ffn, mixer)
                    if down is not None:
                        for p in range(down.shape[1]):
                            down[r, p, w] = probe({**at, f"s{s - 1}.width": p}, f"stage{s}_down")
            self.stages.append(
                _StageCosts(np.array(st.depths), block, np.array([1 if m == "none" else 2 for m in st.mixers]), down)
            )

    def total(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(summed cost, number of layers) of each row of an (N, genes) matrix of encoded architectures."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != self.n_genes:
            raise ValueError(f"expected an (N, {self.n_genes}) gene matrix, got shape {codes.shape}")
        res = codes[:, 0]
        total = np.zeros(len(codes))
        n_layers = np.full(len(codes), 2)  # stem and head
        col, prev_width = 1, None
        for st in self.stages:
            depth, width = st.depths[codes[:, col]], codes[:, col + 1]
            col += 2
            if st.down is None:
                total += self.stem[res, width]
            else:
                total += st.down[res, prev_width, width]
                n_layers += 1
            for i in range(int(st.depths.max())):
                active = i < depth
                ratio, mixer = codes[:, col], codes[:, col + 1]
                col += 2
                total += active * st.block[res, width, ratio, mixer]
                n_layers += active * st.layers_per_block[mixer]
            prev_width = width
        total += self.head[res, prev_width]
        return total, n_layers

    def minimum(self) -> tuple[float, Arch]:
        """The smallest total over the whole space and an architecture that has it (costs must be >= 0).

        Blocks are independent given their stage's width, so a stage's cheapest blocks are its cheapest
        block repeated the fewest allowed times; stages interact only through the downsampling layer
        between neighbouring widths, which a dynamic program over the width chain handles exactly.
        """
        best_value, best_codes = np.inf, None
        for r in range(len(self.space.resolutions)):
            # per stage and width: cheapest block (value and its ratio/mixer) times the smallest depth
            stage_cost, stage_pick = [], []
            for st in self.stages:
                flat = st.block[r].reshape(st.block.shape[1], -1)
                choice = flat.argmin(axis=1)
                stage_cost.append(flat.min(axis=1) * st.depths.min())
                stage_pick.append(np.stack(np.unravel_index(choice, st.block.shape[2:]), axis=1))
            value = self.stem[r] + stage_cost[0]  # [width of stage 1]
            back = []
            for s in range(1, len(self.stages)):
                step = value[:, None] + self.stages[s].down[r]  # [previous width, width]
                back.append(step.argmin(axis=0))
                value = step.min(axis=0) + stage_cost[s]
            value = value + self.head[r]
            w = int(value.argmin())
            if value[w] < best_value:
                widths = [w]
                for pointers in reversed(back):
                    widths.insert(0, int(pointers[widths[0]]))
                best_value, best_codes = float(value[w]), (r, widths, [p[i] for p, i in zip(stage_pick, widths)])
        r, widths, picks = best_codes
        space = self.space
        codes = [r]
        for st, w, (ratio, mixer) in zip(space.stages, widths, picks):
            codes += [int(np.argmin(st.depths)), w]
            codes += [int(ratio), int(mixer)] * max(st.depths)
        return best_value, space.decode(codes)
