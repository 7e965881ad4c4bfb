"""Variation operators over a space's architectures: sampling, mutation, crossover, one-gene
neighbours, and EfficientFormerV2's shrinking actions.

They work on the architecture's structure (a stage's depth adds or drops blocks; widths and ratios
move to neighbouring choices), which the plain integer encoding does not know about. ``Space`` offers
each as a method; strategies use them through the search problem.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .arch import Arch

if TYPE_CHECKING:
    from .space import Space

#: Mixers from the most to the least expensive at equal width, for `largest()`, `smallest()` and shrinking.
MIXER_SIZE_ORDER = ("mhsa", "sepvit", "additive", "separable", "none")


def as_random(rng: Any) -> random.Random:
    """Accept a random.Random, a numpy Generator, an int seed or None."""
    if isinstance(rng, random.Random):
        return rng
    if rng is None or isinstance(rng, int):
        return random.Random(rng)
    if hasattr(rng, "integers"):
        return random.Random(int(rng.integers(0, 2**63 - 1)))
    raise TypeError(f"expected random.Random, numpy Generator or int seed, got {type(rng).__name__}")


def _neighbour(choices: tuple, value: Any, r: random.Random) -> Any:
    if len(choices) == 1:
        return value
    i = choices.index(value)
    options = [j for j in (i - 1, i + 1) if 0 <= j < len(choices)]
    return choices[r.choice(options)]


def sample(space: Space, rng: Any = None) -> Arch:
    """A uniformly random choice for every gene (depth, width, and each block's ratio and mixer)."""
    r = as_random(rng)
    depths = [r.choice(st.depths) for st in space.stages]
    return space.make(
        r.choice(space.resolutions),
        depths,
        [r.choice(st.widths) for st in space.stages],
        [[r.choice(st.ratios) for _ in range(d)] for st, d in zip(space.stages, depths)],
        [[r.choice(st.mixers) for _ in range(d)] for st, d in zip(space.stages, depths)],
    )


def mutate(space: Space, arch: Arch, rng: Any = None, prob: float = 0.1) -> Arch:
    """Change each gene with probability `prob`, always returning a different architecture.

    Depth moves to a neighbouring choice (adding random blocks or dropping the last ones), width and
    ratio move to neighbouring choices, and mixers swap to another allowed mixer.
    """
    r = as_random(rng)
    for _ in range(10):
        child = _mutate_once(space, arch, r, lambda gene: r.random() < prob)
        if child != arch:
            return child
    # Nothing changed by chance (tiny `prob`): change exactly one gene that has another choice.
    movable = [gene for gene in space.genes() if len(gene.choices) > 1 and gene.active(arch.depths)]
    if not movable:
        return arch  # a space of one architecture
    forced = r.choice(movable)
    return _mutate_once(space, arch, r, lambda gene: gene == forced)


def _mutate_once(space: Space, arch: Arch, r: random.Random, pick: Callable[[Any], bool]) -> Arch:
    """Mutate the genes for which `pick(gene)` is true (genes as in ``space.genes()``)."""
    genes = space.gene_index()
    resolution = _neighbour(space.resolutions, arch.resolution, r) if pick(genes["resolution"]) else arch.resolution
    depths, widths, ratios, mixers = [], [], [], []
    for s, st in enumerate(space.stages):
        stage = s + 1
        depth = _neighbour(st.depths, arch.depths[s], r) if pick(genes["depth", stage]) else arch.depths[s]
        stage_ratios = list(arch.ratios[s][:depth]) + [r.choice(st.ratios) for _ in range(depth - arch.depths[s])]
        stage_mixers = list(arch.mixers[s][:depth]) + [r.choice(st.mixers) for _ in range(depth - arch.depths[s])]
        for i in range(depth):
            if pick(genes["ratio", stage, i]):
                stage_ratios[i] = _neighbour(st.ratios, stage_ratios[i], r)
            if pick(genes["mixer", stage, i]) and len(st.mixers) > 1:
                stage_mixers[i] = r.choice([m for m in st.mixers if m != stage_mixers[i]])
        depths.append(depth)
        widths.append(_neighbour(st.widths, arch.widths[s], r) if pick(genes["width", stage]) else arch.widths[s])
        ratios.append(stage_ratios)
        mixers.append(stage_mixers)
    return space.make(resolution, depths, widths, ratios, mixers)


def crossover(space: Space, a: Arch, b: Arch, rng: Any = None) -> Arch:
    """Uniform crossover: each stage's depth and width, and each block, from either parent."""
    r = as_random(rng)
    depths, widths, ratios, mixers = [], [], [], []
    for s in range(len(space.stages)):
        depth = r.choice((a.depths[s], b.depths[s]))
        stage_ratios, stage_mixers = [], []
        for i in range(depth):
            donors = [p for p in (a, b) if i < p.depths[s]]
            donor = r.choice(donors)
            stage_ratios.append(donor.ratios[s][i])
            stage_mixers.append(donor.mixers[s][i])
        depths.append(depth)
        widths.append(r.choice((a.widths[s], b.widths[s])))
        ratios.append(stage_ratios)
        mixers.append(stage_mixers)
    return space.make(r.choice((a.resolution, b.resolution)), depths, widths, ratios, mixers)


def neighbours(space: Space, arch: Arch) -> list[Arch]:
    """Every architecture one gene away: resolution, a stage's depth or width to a neighbouring choice
    (a deeper stage repeats its last block), or one block's ratio or mixer to any other choice."""
    out: list[Arch] = []
    depths, widths = list(arch.depths), list(arch.widths)
    ratios, mixers = [list(r) for r in arch.ratios], [list(m) for m in arch.mixers]

    def with_stage(s: int, **stage: Any) -> Arch:
        d, w = stage.get("depth", depths[s]), stage.get("width", widths[s])
        r, m = stage.get("ratios", ratios[s]), stage.get("mixers", mixers[s])
        return space.make(
            arch.resolution,
            depths[:s] + [d] + depths[s + 1 :],
            widths[:s] + [w] + widths[s + 1 :],
            ratios[:s] + [r] + ratios[s + 1 :],
            mixers[:s] + [m] + mixers[s + 1 :],
        )

    i = space.resolutions.index(arch.resolution)
    for j in (i - 1, i + 1):
        if 0 <= j < len(space.resolutions):
            out.append(space.make(space.resolutions[j], depths, widths, ratios, mixers))
    for s, st in enumerate(space.stages):
        d = st.depths.index(depths[s])
        for j in (d - 1, d + 1):
            if 0 <= j < len(st.depths):
                new = st.depths[j]
                extra = new - depths[s]
                out.append(
                    with_stage(
                        s,
                        depth=new,
                        ratios=(ratios[s] + [ratios[s][-1]] * extra)[:new],
                        mixers=(mixers[s] + [mixers[s][-1]] * extra)[:new],
                    )
                )
        w = st.widths.index(widths[s])
        for j in (w - 1, w + 1):
            if 0 <= j < len(st.widths):
                out.append(with_stage(s, width=st.widths[j]))
        for b in range(depths[s]):
            for ratio in st.ratios:
                if ratio != ratios[s][b]:
                    out.append(with_stage(s, ratios=ratios[s][:b] + [ratio] + ratios[s][b + 1 :]))
            for mixer in st.mixers:
                if mixer != mixers[s][b]:
                    out.append(with_stage(s, mixers=mixers[s][:b] + [mixer] + mixers[s][b + 1 :]))
    return out


def shrink_actions(space: Space, arch: Arch) -> list[tuple[str, Arch]]:
    """Every one-step shrinking of `arch`, named as in EfficientFormerV2's search.

    ``A_N``: remove a stage's last block, or slim a block's mixer to the next cheaper one the stage
    allows (down to ``none``); ``A_C``: a stage's width to the next smaller choice; ``A_E``: one block's
    FFN ratio to the next smaller choice; ``A_R``: the next smaller input resolution.
    """
    actions: list[tuple[str, Arch]] = []
    depths, widths = list(arch.depths), list(arch.widths)
    ratios, mixers = [list(r) for r in arch.ratios], [list(m) for m in arch.mixers]

    def make(**changes: Any) -> Arch:
        return space.make(
            changes.get("resolution", arch.resolution),
            changes.get("depths", depths),
            changes.get("widths", widths),
            changes.get("ratios", ratios),
            changes.get("mixers", mixers),
        )

    for s, st in enumerate(space.stages):
        tag = f"s{s + 1}"
        smaller = [d for d in st.depths if d < depths[s]]
        if smaller:
            d = max(smaller)
            actions.append(
                (
                    f"A_N:{tag}.depth={d}",
                    make(
                        depths=depths[:s] + [d] + depths[s + 1 :],
                        ratios=ratios[:s] + [ratios[s][:d]] + ratios[s + 1 :],
                        mixers=mixers[:s] + [mixers[s][:d]] + mixers[s + 1 :],
                    ),
                )
            )
        order = [m for m in MIXER_SIZE_ORDER if m in st.mixers]
        for i in range(depths[s]):
            mixer = mixers[s][i]
            if mixer in order and order.index(mixer) + 1 < len(order):
                cheaper = order[order.index(mixer) + 1]
                stage = list(mixers[s])
                stage[i] = cheaper
                actions.append((f"A_N:{tag}.b{i}.mixer={cheaper}", make(mixers=mixers[:s] + [stage] + mixers[s + 1 :])))
        w = st.widths.index(widths[s])
        if w > 0:
            actions.append(
                (f"A_C:{tag}.width={st.widths[w - 1]}", make(widths=widths[:s] + [st.widths[w - 1]] + widths[s + 1 :]))
            )
        for i in range(depths[s]):
            r = st.ratios.index(ratios[s][i])
            if r > 0:
                stage = list(ratios[s])
                stage[i] = st.ratios[r - 1]
                actions.append(
                    (f"A_E:{tag}.b{i}.ratio={st.ratios[r - 1]:g}", make(ratios=ratios[:s] + [stage] + ratios[s + 1 :]))
                )
    res = space.resolutions.index(arch.resolution)
    if res > 0:
        actions.append((f"A_R:resolution={space.resolutions[res - 1]}", make(resolution=space.resolutions[res - 1])))
    return actions


__all__ = ["sample", "mutate", "crossover", "neighbours", "shrink_actions", "as_random", "MIXER_SIZE_ORDER"]
