"""Search spaces: the choices an architecture may take, loaded from YAML files and validated."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .arch import Arch
from .costs import CostTables
from .layers import MIXER_KINDS, LayerSpec
from .yamlio import SpaceError, load_file, load_text, where

SPACES_DIR = Path(__file__).parent / "spaces"
SPACE_KEYS = ("name", "description", "resolutions", "num_classes", "distillation", "stages", "presets")
STAGE_KEYS = ("depths", "widths", "ratios", "mixers", "downsample", "mhsa_stride")
DOWNSAMPLES = ("conv", "attention")
#: Mixers from the most to the least expensive at equal width, for `largest()` and `smallest()`.
MIXER_SIZE_ORDER = ("mhsa", "additive", "separable", "none")


class ChoiceError(SpaceError):
    """An architecture value that its space does not offer; ``path`` locates it in the arch file."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class StageSpace:
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    ratios: tuple[float, ...]
    mixers: tuple[str, ...]
    downsample: str = "conv"  # how the stage is entered (the first stage is entered by the stem)
    mhsa_stride: int = 1  # 2: MHSA attends on a map halved by a strided depthwise conv


def _rng(rng: Any) -> random.Random:
    """Accept a random.Random, a numpy Generator, an int seed or None."""
    if isinstance(rng, random.Random):
        return rng
    if rng is None or isinstance(rng, int):
        return random.Random(rng)
    if hasattr(rng, "integers"):
        return random.Random(int(rng.integers(0, 2**63 - 1)))
    raise TypeError(f"expected random.Random, numpy Generator or int seed, got {type(rng).__name__}")


class Space:
    """A search space: per-stage depth, width, FFN-ratio and mixer choices, plus fixed settings."""

    def __init__(self, name: str, stages: list[StageSpace], resolutions: tuple[int, ...], *,
                 num_classes: int = 1000, distillation: bool = True, description: str = "",
                 source: str = "", ref: str = "", presets: dict[str, Any] | None = None):
        self.name = name
        self.stages = tuple(stages)
        self.resolutions = tuple(resolutions)
        self.num_classes = num_classes
        self.distillation = distillation
        self.description = description
        self.source = source
        self.ref = ref or name  # what Arch.space holds for this space: a shipped name or a path
        self._preset_data = presets or {}
        self._presets: dict[str, Arch] = {}
        self.base_ref = self.ref  # the shipped name or file this space derives from (see derive)
        self.overrides: dict[str, Any] = {}  # what derive() changed from the base: resolutions, num_classes, ...

    def __repr__(self) -> str:
        return f"Space({self.name!r}, {len(self.stages)} stages, {self.size():.3g} architectures)"

    # ---- presets -------------------------------------------------------------------------------
    @property
    def preset_names(self) -> list[str]:
        return list(self._preset_data)

    def preset(self, name: str) -> Arch:
        """A named architecture; `s0` and `efficientformerv2_s0` both work for space efficientformerv2."""
        key = name.lower()
        prefix = self.name.replace("-", "_").lower() + "_"
        if key.startswith(prefix):
            key = key[len(prefix):]
        if key not in self._preset_data:
            names = ", ".join(self.preset_names) or "none"
            raise SpaceError(f"unknown preset {name!r} of space {self.name!r} (presets: {names})")
        if key not in self._presets:
            data, lines = self._preset_data[key]
            self._presets[key] = Arch.from_dict(
                data, source=self.source, lines=lines, prefix=("presets", key), space=self.ref)
        return self._presets[key]

    # ---- checking ------------------------------------------------------------------------------
    def check(self, arch: Arch) -> None:
        """Raise ChoiceError naming the first value of `arch` that this space does not offer."""
        n = len(self.stages)
        if len(arch.depths) != n:
            raise ChoiceError(("depths",), f"has {len(arch.depths)} stages, space {self.name!r} has {n}")
        if arch.resolution not in self.resolutions:
            raise ChoiceError(("resolution",), _not_offered(arch.resolution, "resolution", self.resolutions))
        for s, stage in enumerate(self.stages):
            label = f"of stage {s + 1}"
            if arch.depths[s] not in stage.depths:
                raise ChoiceError(("depths", s), _not_offered(arch.depths[s], f"depth {label}", stage.depths))
            if arch.widths[s] not in stage.widths:
                raise ChoiceError(("widths", s), _not_offered(arch.widths[s], f"width {label}", stage.widths))
            for i, ratio in enumerate(arch.ratios[s]):
                if ratio not in stage.ratios:
                    raise ChoiceError(("ratios", s, i), _not_offered(ratio, f"FFN ratio {label}", stage.ratios))
            for i, mixer in enumerate(arch.mixers[s]):
                if mixer not in stage.mixers:
                    raise ChoiceError(("mixers", s, i), _not_offered(mixer, f"mixer {label}", stage.mixers))

    def contains(self, arch: Arch) -> bool:
        try:
            self.check(arch)
        except SpaceError:
            return False
        return True

    # ---- layers ----------------------------------------------------------------------------------
    def layers(self, arch: Arch) -> tuple[LayerSpec, ...]:
        """The layer sequence of `arch` (see search_spaces.layers). Cached per architecture."""
        return _layers(self, arch)

    def slot_layers(self) -> list[tuple[str, dict[str, LayerSpec]]]:
        """Every supernet slot with, per variant it can hold, the largest layer it must serve."""
        res = max(self.resolutions)
        widths = [max(st.widths) for st in self.stages]
        slots: list[tuple[str, dict[str, LayerSpec]]] = []
        for spec in self._plan(res, [max(st.depths) for st in self.stages], widths,
                               lambda s, i: max(self.stages[s].ratios), None):
            if spec.kind == "mixer":  # placeholder from _plan: one slot, one variant per mixer
                stage = self.stages[spec.stage - 1]
                variants = {m: LayerSpec(m, spec.cin, spec.cout, spec.grid,
                                         stride=stage.mhsa_stride if m == "mhsa" else 1,
                                         name=spec.name, stage=spec.stage)
                            for m in stage.mixers if m != "none"}
                if variants:
                    slots.append((spec.name, variants))
            else:
                slots.append((spec.name, {spec.kind: spec}))
        return slots

    def cost_tables(self, cost) -> CostTables:
        """Vectorised totals and exact minimum of an additive per-layer cost ``cost(LayerSpec) -> float``."""
        return CostTables(self, cost)

    def all_layers(self) -> list[LayerSpec]:
        """Every distinct layer (by key) that some architecture of the space contains, in network order.

        Built with the same layout code as :meth:`layers`: for each resolution, stage, width of that
        stage and of the stage before it, ratio and mixer, one network is laid out and the layers of
        that stage (with the stem for the first stage and the head for the last) are kept.
        """
        seen: dict[LayerSpec, None] = {}
        n = len(self.stages)
        for res, s in itertools.product(self.resolutions, range(n)):
            stage = self.stages[s]
            prev_widths = self.stages[s - 1].widths if s else (None,)
            for prev, width, ratio, mixer in itertools.product(prev_widths, stage.widths, stage.ratios, stage.mixers):
                widths = [max(st.widths) for st in self.stages]
                widths[s] = width
                if prev is not None:
                    widths[s - 1] = prev
                ratios = [st.ratios[0] for st in self.stages]
                ratios[s] = ratio
                mixers = ["none"] * n
                mixers[s] = mixer
                for spec in self._plan(res, [1] * n, widths, lambda t, i, r=ratios: r[t], lambda t, i, m=mixers: m[t]):
                    if spec.stage == s + 1 or (spec.kind == "stem" and s == 0) or (spec.kind == "head" and s == n - 1):
                        seen.setdefault(spec)
        return list(seen)

    def _plan(self, resolution: int, depths, widths, ratio, mixer) -> list[LayerSpec]:
        """Lay out the network. `mixer(s, i)` names block i's mixer; None asks for slot placeholders."""
        specs = [LayerSpec("stem", 3, widths[0], resolution, stride=4, name="stem", stage=0)]
        grid, cin = resolution // 4, widths[0]
        for s, stage in enumerate(self.stages):
            width = widths[s]
            if s > 0:
                kind = "attn_down" if stage.downsample == "attention" else "conv_down"
                specs.append(LayerSpec(kind, cin, width, grid, stride=2, name=f"stage{s + 1}_down", stage=s + 1))
                grid //= 2
            for i in range(depths[s]):
                name = f"stage{s + 1}_block{i}"
                chosen = "mixer" if mixer is None else mixer(s, i)
                if chosen != "none":
                    stride = stage.mhsa_stride if chosen == "mhsa" else 1
                    specs.append(LayerSpec(chosen, width, width, grid, stride=stride, name=f"{name}_mixer", stage=s + 1))
                specs.append(LayerSpec("ffn", width, width, grid, ratio=ratio(s, i), name=f"{name}_ffn", stage=s + 1))
            cin = width
        specs.append(LayerSpec("head", cin, self.num_classes, grid, distillation=self.distillation,
                               name="head", stage=len(self.stages) + 1))
        return specs

    # ---- size, sampling, variation -------------------------------------------------------------
    def size(self) -> int:
        """The number of distinct architectures in the space (exact)."""
        total = len(self.resolutions)
        for st in self.stages:
            per_block = len(st.ratios) * len(st.mixers)
            total *= len(st.widths) * sum(per_block**d for d in st.depths)
        return total

    def sample(self, rng: Any = None) -> Arch:
        """A uniformly random choice for every gene (depth, width, and each block's ratio and mixer)."""
        r = _rng(rng)
        depths = [r.choice(st.depths) for st in self.stages]
        return self._make(
            r.choice(self.resolutions), depths, [r.choice(st.widths) for st in self.stages],
            [[r.choice(st.ratios) for _ in range(d)] for st, d in zip(self.stages, depths)],
            [[r.choice(st.mixers) for _ in range(d)] for st, d in zip(self.stages, depths)],
        )

    def largest(self) -> Arch:
        """Deepest, widest, largest ratios, and the most expensive mixer each stage allows."""
        return self._extreme(max, MIXER_SIZE_ORDER)

    def smallest(self) -> Arch:
        return self._extreme(min, MIXER_SIZE_ORDER[::-1])

    def _extreme(self, pick, order) -> Arch:
        depths = [pick(st.depths) for st in self.stages]
        mixers = [next(m for m in order if m in st.mixers) for st in self.stages]
        return self._make(
            pick(self.resolutions), depths, [pick(st.widths) for st in self.stages],
            [[pick(st.ratios)] * d for st, d in zip(self.stages, depths)],
            [[m] * d for m, d in zip(mixers, depths)],
        )

    def mutate(self, arch: Arch, rng: Any = None, prob: float = 0.1) -> Arch:
        """Change each gene with probability `prob`, always returning a different architecture.

        Depth moves to a neighbouring choice (adding random blocks or dropping the last ones),
        width and ratio move to neighbouring choices, and mixers swap to another allowed mixer.
        """
        r = _rng(rng)
        for _ in range(10):
            child = self._mutate_once(arch, r, lambda gene: r.random() < prob)
            if child != arch:
                return child
        # Nothing changed by chance (tiny `prob`): change exactly one gene that has another choice.
        movable = [name for name, choices in self.genes() if len(choices) > 1 and self._gene_active(arch, name)]
        if not movable:
            return arch  # a space of one architecture
        forced = r.choice(movable)
        return self._mutate_once(arch, r, lambda gene: gene == forced)

    def _gene_active(self, arch: Arch, gene: str) -> bool:
        parts = gene.split(".")
        return len(parts) < 3 or int(parts[1][1:]) < arch.depths[int(parts[0][1:]) - 1]

    def _mutate_once(self, arch: Arch, r: random.Random, pick) -> Arch:
        """Mutate the genes for which `pick(gene_name)` is true (names as in :meth:`genes`)."""
        resolution = _neighbour(self.resolutions, arch.resolution, r) if pick("resolution") else arch.resolution
        depths, widths, ratios, mixers = [], [], [], []
        for s, st in enumerate(self.stages):
            tag = f"s{s + 1}"
            depth = _neighbour(st.depths, arch.depths[s], r) if pick(f"{tag}.depth") else arch.depths[s]
            stage_ratios = list(arch.ratios[s][:depth]) + [r.choice(st.ratios) for _ in range(depth - arch.depths[s])]
            stage_mixers = list(arch.mixers[s][:depth]) + [r.choice(st.mixers) for _ in range(depth - arch.depths[s])]
            for i in range(depth):
                if pick(f"{tag}.b{i}.ratio"):
                    stage_ratios[i] = _neighbour(st.ratios, stage_ratios[i], r)
                if pick(f"{tag}.b{i}.mixer") and len(st.mixers) > 1:
                    stage_mixers[i] = r.choice([m for m in st.mixers if m != stage_mixers[i]])
            depths.append(depth)
            widths.append(_neighbour(st.widths, arch.widths[s], r) if pick(f"{tag}.width") else arch.widths[s])
            ratios.append(stage_ratios)
            mixers.append(stage_mixers)
        return self._make(resolution, depths, widths, ratios, mixers)

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every architecture one gene away: resolution, a stage's depth or width to a neighbouring choice
        (a deeper stage repeats its last block), or one block's ratio or mixer to any other choice."""
        out: list[Arch] = []
        depths, widths = list(arch.depths), list(arch.widths)
        ratios, mixers = [list(r) for r in arch.ratios], [list(m) for m in arch.mixers]

        def with_stage(s: int, **stage: Any) -> Arch:
            d, w = stage.get("depth", depths[s]), stage.get("width", widths[s])
            r, m = stage.get("ratios", ratios[s]), stage.get("mixers", mixers[s])
            return self._make(arch.resolution, depths[:s] + [d] + depths[s + 1:], widths[:s] + [w] + widths[s + 1:],
                              ratios[:s] + [r] + ratios[s + 1:], mixers[:s] + [m] + mixers[s + 1:])

        i = self.resolutions.index(arch.resolution)
        for j in (i - 1, i + 1):
            if 0 <= j < len(self.resolutions):
                out.append(self._make(self.resolutions[j], depths, widths, ratios, mixers))
        for s, st in enumerate(self.stages):
            d = st.depths.index(depths[s])
            for j in (d - 1, d + 1):
                if 0 <= j < len(st.depths):
                    new = st.depths[j]
                    extra = new - depths[s]
                    out.append(with_stage(s, depth=new, ratios=(ratios[s] + [ratios[s][-1]] * extra)[:new],
                                          mixers=(mixers[s] + [mixers[s][-1]] * extra)[:new]))
            w = st.widths.index(widths[s])
            for j in (w - 1, w + 1):
                if 0 <= j < len(st.widths):
                    out.append(with_stage(s, width=st.widths[j]))
            for b in range(depths[s]):
                for ratio in st.ratios:
                    if ratio != ratios[s][b]:
                        out.append(with_stage(s, ratios=ratios[s][:b] + [ratio] + ratios[s][b + 1:]))
                for mixer in st.mixers:
                    if mixer != mixers[s][b]:
                        out.append(with_stage(s, mixers=mixers[s][:b] + [mixer] + mixers[s][b + 1:]))
        return out

    def shrink_actions(self, arch: Arch) -> list[tuple[str, Arch]]:
        """Every one-step shrinking of `arch`, named as in EfficientFormerV2's search.

        ``A_N``: remove a stage's last block, or slim a block's mixer to the next cheaper one the stage
        allows (down to ``none``); ``A_C``: a stage's width to the next smaller choice; ``A_E``: one
        block's FFN ratio to the next smaller choice; ``A_R``: the next smaller input resolution.
        """
        actions: list[tuple[str, Arch]] = []
        depths, widths = list(arch.depths), list(arch.widths)
        ratios, mixers = [list(r) for r in arch.ratios], [list(m) for m in arch.mixers]

        def make(**changes: Any) -> Arch:
            return self._make(changes.get("resolution", arch.resolution), changes.get("depths", depths),
                              changes.get("widths", widths), changes.get("ratios", ratios), changes.get("mixers", mixers))

        for s, st in enumerate(self.stages):
            tag = f"s{s + 1}"
            smaller = [d for d in st.depths if d < depths[s]]
            if smaller:
                d = max(smaller)
                actions.append((f"A_N:{tag}.depth={d}", make(
                    depths=depths[:s] + [d] + depths[s + 1:],
                    ratios=ratios[:s] + [ratios[s][:d]] + ratios[s + 1:],
                    mixers=mixers[:s] + [mixers[s][:d]] + mixers[s + 1:])))
            order = [m for m in MIXER_SIZE_ORDER if m in st.mixers]
            for i in range(depths[s]):
                mixer = mixers[s][i]
                if mixer in order and order.index(mixer) + 1 < len(order):
                    cheaper = order[order.index(mixer) + 1]
                    stage = list(mixers[s])
                    stage[i] = cheaper
                    actions.append((f"A_N:{tag}.b{i}.mixer={cheaper}", make(mixers=mixers[:s] + [stage] + mixers[s + 1:])))
            w = st.widths.index(widths[s])
            if w > 0:
                actions.append((f"A_C:{tag}.width={st.widths[w - 1]}",
                                make(widths=widths[:s] + [st.widths[w - 1]] + widths[s + 1:])))
            for i in range(depths[s]):
                r = st.ratios.index(ratios[s][i])
                if r > 0:
                    stage = list(ratios[s])
                    stage[i] = st.ratios[r - 1]
                    actions.append((f"A_E:{tag}.b{i}.ratio={st.ratios[r - 1]:g}",
                                    make(ratios=ratios[:s] + [stage] + ratios[s + 1:])))
        res = self.resolutions.index(arch.resolution)
        if res > 0:
            actions.append((f"A_R:resolution={self.resolutions[res - 1]}", make(resolution=self.resolutions[res - 1])))
        return actions

    def crossover(self, a: Arch, b: Arch, rng: Any = None) -> Arch:
        """Uniform crossover: each stage's depth and width, and each block, from either parent."""
        r = _rng(rng)
        depths, widths, ratios, mixers = [], [], [], []
        for s in range(len(self.stages)):
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
        return self._make(r.choice((a.resolution, b.resolution)), depths, widths, ratios, mixers)

    # ---- integer encoding ------------------------------------------------------------------------
    def genes(self) -> list[tuple[str, tuple]]:
        """Gene names and their choices, in encoding order. Genes of blocks past the depth are ignored."""
        genes: list[tuple[str, tuple]] = [("resolution", self.resolutions)]
        for s, st in enumerate(self.stages, 1):
            genes += [(f"s{s}.depth", st.depths), (f"s{s}.width", st.widths)]
            for i in range(max(st.depths)):
                genes += [(f"s{s}.b{i}.ratio", st.ratios), (f"s{s}.b{i}.mixer", st.mixers)]
        return genes

    def encode(self, arch: Arch) -> list[int]:
        """Choice indices, one per gene; unused block genes are 0."""
        self.check(arch)
        codes = [self.resolutions.index(arch.resolution)]
        for s, st in enumerate(self.stages):
            codes += [st.depths.index(arch.depths[s]), st.widths.index(arch.widths[s])]
            for i in range(max(st.depths)):
                if i < arch.depths[s]:
                    codes += [st.ratios.index(arch.ratios[s][i]), st.mixers.index(arch.mixers[s][i])]
                else:
                    codes += [0, 0]
        return codes

    def decode(self, codes: list[int]) -> Arch:
        genes = self.genes()
        if len(codes) != len(genes):
            raise SpaceError(f"expected {len(genes)} genes for space {self.name!r}, got {len(codes)}")
        for (name, choices), code in zip(genes, codes):
            if not 0 <= int(code) < len(choices):
                raise SpaceError(f"gene {name}: index {code} out of range 0..{len(choices) - 1}")
        it = iter(int(c) for c in codes)
        resolution = self.resolutions[next(it)]
        depths, widths, ratios, mixers = [], [], [], []
        for st in self.stages:
            depth, width = st.depths[next(it)], st.widths[next(it)]
            blocks = [(st.ratios[next(it)], st.mixers[next(it)]) for _ in range(max(st.depths))][:depth]
            depths.append(depth)
            widths.append(width)
            ratios.append([b[0] for b in blocks])
            mixers.append([b[1] for b in blocks])
        return self._make(resolution, depths, widths, ratios, mixers)

    def _make(self, resolution, depths, widths, ratios, mixers) -> Arch:
        return Arch(self.ref, int(resolution), tuple(depths), tuple(widths),
                    tuple(tuple(r) for r in ratios), tuple(tuple(m) for m in mixers))

    # ---- description ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "size": self.size(),
            "resolutions": list(self.resolutions),
            "num_classes": self.num_classes,
            "distillation": self.distillation,
            "stages": [
                {"depths": list(st.depths), "widths": list(st.widths), "ratios": list(st.ratios),
                 "mixers": list(st.mixers), "downsample": st.downsample if s else "stem",
                 "mhsa_stride": st.mhsa_stride}
                for s, st in enumerate(self.stages)
            ],
            "presets": self.preset_names,
        }


    # ---- derived spaces ----------------------------------------------------------------------------
    def derive(self, *, resolutions: Sequence[int] | None = None, num_classes: int | None = None,
               distillation: bool | None = None) -> Space:
        """This space for another task: other input resolutions, classes or head, the same genes otherwise.

        Training on a 10-class data set at 64 pixels needs a head of 10 classes and a resolution the
        shipped space does not offer, while the shipped space (and its published parameter counts)
        must stay as it is. The derived space's ``ref`` is ``BASE?key=value&...`` (e.g.
        ``efficientformerv2?num_classes=10&resolutions=64``), which :func:`load` understands, so its
        architectures load anywhere. Presets keep their genes; a preset resolution the derived space
        does not offer becomes its largest resolution.
        """
        overrides = dict(self.overrides)
        if resolutions is not None:
            overrides["resolutions"] = tuple(sorted({int(r) for r in resolutions}))
        if num_classes is not None:
            overrides["num_classes"] = int(num_classes)
        if distillation is not None:
            overrides["distillation"] = bool(distillation)
        base = load(self.base_ref)
        return _derived(base, tuple(sorted(overrides.items())))


def _derived(base: Space, overrides: tuple[tuple[str, Any], ...]) -> Space:
    """The (cached) space `base` with `overrides`; the base itself when there are none."""
    if not overrides:
        return base
    ref = base.ref + "?" + "&".join(f"{k}={_override_text(v)}" for k, v in overrides)
    space = _LOADED.get(ref)
    if space is not None:
        return space
    values = dict(overrides)
    res = values.get("resolutions", base.resolutions)
    if not res or any(r <= 0 or r % _resolution_multiple(base.stages) for r in res):
        raise SpaceError(f"space {base.name!r}: resolutions must be positive multiples of "
                         f"{_resolution_multiple(base.stages)}, got {', '.join(map(str, res))}")
    num_classes = values.get("num_classes", base.num_classes)
    if num_classes <= 0:
        raise SpaceError(f"space {base.name!r}: num_classes must be positive, got {num_classes}")
    presets = {}
    for key, (data, lines) in base._preset_data.items():
        if isinstance(data, dict) and data.get("resolution") not in res:
            data = {**data, "resolution": max(res)}
        presets[key] = (data, lines)
    space = Space(base.name, list(base.stages), res, num_classes=num_classes,
                  distillation=values.get("distillation", base.distillation), description=base.description,
                  source=base.source, ref=ref, presets=presets)
    space.base_ref, space.overrides = base.ref, values
    _LOADED[ref] = space
    return space


def _override_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse_overrides(ref: str, text: str) -> dict[str, Any]:
    """``num_classes=10&resolutions=64,96&distillation=false`` -> keyword arguments of :meth:`Space.derive`."""
    out: dict[str, Any] = {}
    for item in text.split("&"):
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            if key == "resolutions":
                out[key] = tuple(int(v) for v in value.split(","))
            elif key == "num_classes":
                out[key] = int(value)
            elif key == "distillation" and value in ("true", "false"):
                out[key] = value == "true"
            else:
                raise ValueError
        except ValueError:
            raise SpaceError(f"space {ref!r}: bad override {item!r} (accepted: resolutions=R[,R...], num_classes=N, "
                             "distillation=true|false)") from None
    return out


def _resolution_multiple(stages: Sequence[StageSpace]) -> int:
    """Every stage's map must halve exactly, and stride attention halves its stage's map once more."""
    return max([2 ** (len(stages) + 1)] + [2 ** (s + 3) for s, st in enumerate(stages) if st.mhsa_stride > 1])


@lru_cache(maxsize=65536)
def _layers(space: Space, arch: Arch) -> tuple[LayerSpec, ...]:
    space.check(arch)
    return tuple(space._plan(arch.resolution, arch.depths, arch.widths,
                             lambda s, i: arch.ratios[s][i], lambda s, i: arch.mixers[s][i]))


def _neighbour(choices: tuple, value: Any, r: random.Random) -> Any:
    if len(choices) == 1:
        return value
    i = choices.index(value)
    options = [j for j in (i - 1, i + 1) if 0 <= j < len(choices)]
    return choices[r.choice(options)]


def _not_offered(value: Any, what: str, choices: tuple) -> str:
    return f"{value!r} is not a {what} in this space (choices: {', '.join(map(str, choices))})"


# ---- loading ------------------------------------------------------------------------------------
def list_spaces() -> list[str]:
    """Names of the spaces shipped with the package."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


_LOADED: dict[str, Space] = {}


def load(name_or_path: str | Path) -> Space:
    """A shipped space by name, or a space YAML file by path. Cached by the reference given."""
    ref = str(name_or_path)
    space = _LOADED.get(ref)
    if space is not None:
        return space
    if "?" in ref and not Path(ref).exists():  # a derived space: BASE?key=value&...
        base, _, overrides = ref.rpartition("?")
        return load(base).derive(**_parse_overrides(ref, overrides))
    if ref in list_spaces():
        space = _load_cached(ref, str(SPACES_DIR / f"{ref}.yaml"))
    else:
        path = Path(ref)
        if not (path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists()):
            raise SpaceError(f"unknown space {ref!r} (shipped: {', '.join(list_spaces())}; or give a path to a space YAML)")
        if not path.is_file():
            raise SpaceError(f"no such space file: {ref}")
        space = _load_cached(ref, str(path.resolve()))
    _LOADED[ref] = space
    return space


def register_text(ref: str, text: str) -> Space:
    """A space from YAML text, loadable as `ref` from now on: a space file saved elsewhere (e.g. in a
    training checkpoint) whose path does not exist on this machine."""
    data, lines = load_text(text, ref)
    space = _parse_space(data, lines, ref, ref)
    _LOADED[ref] = space
    return space


@lru_cache(maxsize=64)
def _load_cached(ref: str, path: str) -> Space:
    data, lines = load_file(path)
    return _parse_space(data, lines, path, ref)


def _parse_space(data: Any, lines: dict[tuple, int], source: str, ref: str) -> Space:
    def fail(path: tuple, message: str) -> SpaceError:
        return SpaceError(f"{where(source, lines, path)}: {message}")

    if not isinstance(data, dict):
        raise fail((), "a space file must be a mapping")
    for key in data:
        if key not in SPACE_KEYS:
            raise fail((key,), f"unknown key {key!r} (accepted: {', '.join(SPACE_KEYS)})")
    for key in ("name", "resolutions", "stages"):
        if key not in data:
            raise fail((), f"missing key {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise fail(("name",), "expected a non-empty name")

    def choices(path: tuple, value: Any, kind: str) -> tuple:
        if not isinstance(value, list) or not value:
            raise fail(path, f"expected a non-empty list of {kind}, got {value!r}")
        out = []
        for i, item in enumerate(value):
            if kind == "mixers":
                item = "none" if item is None else item
                if item not in MIXER_KINDS:
                    raise fail(path + (i,), f"unknown mixer {item!r} (accepted: {', '.join(MIXER_KINDS)})")
            elif kind == "numbers":
                if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0:
                    raise fail(path + (i,), f"expected a positive number, got {item!r}")
                item = int(item) if float(item).is_integer() else float(item)
            elif isinstance(item, bool) or not isinstance(item, int) or item <= 0:
                raise fail(path + (i,), f"expected a positive integer, got {item!r}")
            if item in out:
                raise fail(path + (i,), f"duplicate choice {item!r}")
            out.append(item)
        return tuple(out) if kind == "mixers" else tuple(sorted(out))

    stages_data = data["stages"]
    if not isinstance(stages_data, list) or not stages_data:
        raise fail(("stages",), "expected a non-empty list of stages")
    stages = []
    for s, st in enumerate(stages_data):
        path = ("stages", s)
        if not isinstance(st, dict):
            raise fail(path, "expected a mapping with keys " + ", ".join(STAGE_KEYS))
        for key in st:
            if key not in STAGE_KEYS:
                raise fail(path + (key,), f"unknown key {key!r} (accepted: {', '.join(STAGE_KEYS)})")
        for key in STAGE_KEYS[:4]:
            if key not in st:
                raise fail(path, f"missing key {key!r}")
        downsample = st.get("downsample", "conv")
        if downsample not in DOWNSAMPLES:
            raise fail(path + ("downsample",), f"expected one of {', '.join(DOWNSAMPLES)}, got {downsample!r}")
        if s == 0 and "downsample" in st:
            raise fail(path + ("downsample",), "the first stage is entered by the stem; remove this key")
        stride = st.get("mhsa_stride", 1)
        if stride not in (1, 2):
            raise fail(path + ("mhsa_stride",), f"expected 1 or 2, got {stride!r}")
        widths = choices(path + ("widths",), st["widths"], "integers")
        if s == 0 and any(w % 2 for w in widths):
            raise fail(path + ("widths",), "stage 1 widths must be even (the stem's first conv has half of them)")
        stages.append(StageSpace(
            depths=choices(path + ("depths",), st["depths"], "integers"), widths=widths,
            ratios=choices(path + ("ratios",), st["ratios"], "numbers"),
            mixers=choices(path + ("mixers",), st["mixers"], "mixers"),
            downsample=downsample, mhsa_stride=stride))

    resolutions = choices(("resolutions",), data["resolutions"], "integers")
    multiple = _resolution_multiple(stages)
    for i, res in enumerate(data["resolutions"]):  # file order, so the error points at the right item
        if res % multiple:
            raise fail(("resolutions", i), f"{res} is not a multiple of {multiple} (needed by this space's stages "
                       "and stride attention)")
    num_classes = data.get("num_classes", 1000)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise fail(("num_classes",), f"expected a positive integer, got {num_classes!r}")
    distillation = data.get("distillation", True)
    if not isinstance(distillation, bool):
        raise fail(("distillation",), f"expected true or false, got {distillation!r}")
    presets = data.get("presets") or {}
    if not isinstance(presets, dict):
        raise fail(("presets",), "expected a mapping of preset names to architectures")

    space = Space(name.strip(), stages, resolutions, num_classes=num_classes, distillation=distillation,
                  description=str(data.get("description", "")).strip(), source=source, ref=ref,
                  presets={str(k).lower(): (v, lines) for k, v in presets.items()})
    return space
