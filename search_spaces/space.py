"""Search spaces: the choices an architecture may take, their layout into layers, and their encoding.

A :class:`Space` is the schema (stages with their depth, width, ratio and mixer choices, the
resolutions, the head) and what follows from it alone: whether an architecture belongs, its layer
sequence, the supernet's slots, the integer encoding over :class:`~search_spaces.genes.Gene` s, and the
extreme architectures. Variation (sampling, mutation, crossover, neighbours, shrinking) lives in
:mod:`search_spaces.operators`; loading, parsing and the registry of loaded spaces in
:mod:`search_spaces.registry`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from . import operators
from .arch import SPACES, Arch
from .costs import CostTables
from .errors import SpaceError
from .genes import Gene
from .layers import LayerSpec
from .operators import MIXER_SIZE_ORDER

DOWNSAMPLES = ("conv", "attention")


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
    sepvit_heads: int = 2  # SepViT attention heads of 32 channels (fixed per stage, as in the paper)
    sepvit_window: int = 7  # SepViT window side (the paper's 7); a smaller map is one window

    def mixer_spec(self, kind: str, width: int, grid: int, *, name: str, stage: int) -> LayerSpec:
        """The layer of mixer `kind` in this stage: the one place a mixer's settings reach its spec."""
        if kind == "sepvit":
            return LayerSpec(
                kind, width, width, grid, heads=self.sepvit_heads, window=min(self.sepvit_window, grid), name=name, stage=stage
            )
        return LayerSpec(kind, width, width, grid, stride=self.mhsa_stride if kind == "mhsa" else 1, name=name, stage=stage)


class Space:
    """A search space: per-stage depth, width, FFN-ratio and mixer choices, plus fixed settings."""

    def __init__(
        self,
        name: str,
        stages: list[StageSpace],
        resolutions: tuple[int, ...],
        *,
        num_classes: int = 1000,
        distillation: bool = True,
        description: str = "",
        source: str = "",
        ref: str = "",
        presets: dict[str, Any] | None = None,
        base: Space | None = None,
        overrides: dict[str, Any] | None = None,
    ):
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
        self.base = base or self  # the shipped or file space this one derives from (see derive)
        self.base_ref = self.base.ref
        self.overrides: dict[str, Any] = dict(overrides or {})  # what derive() changed: resolutions, num_classes, ...
        self.yaml_text = ""  # the space file's text (set by the registry; what a checkpoint saves)

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
            key = key[len(prefix) :]
        if key not in self._preset_data:
            names = ", ".join(self.preset_names) or "none"
            raise SpaceError(f"unknown preset {name!r} of space {self.name!r} (presets: {names})")
        if key not in self._presets:
            data, lines = self._preset_data[key]
            self._presets[key] = Arch.from_dict(data, source=self.source, lines=lines, prefix=("presets", key), space=self.ref)
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

    # ---- layout -------------------------------------------------------------------------------
    def slot_layers(self) -> list[tuple[str, dict[str, LayerSpec]]]:
        """Every supernet slot with, per variant it can hold, the largest layer it must serve."""
        res = max(self.resolutions)
        widths = [max(st.widths) for st in self.stages]
        slots: list[tuple[str, dict[str, LayerSpec]]] = []
        for spec in self._plan(
            res, [max(st.depths) for st in self.stages], widths, lambda s, i: max(self.stages[s].ratios), None
        ):
            if spec.kind == "mixer":  # placeholder from _plan: one slot, one variant per mixer
                stage = self.stages[spec.stage - 1]
                variants = {
                    m: stage.mixer_spec(m, spec.cout, spec.grid, name=spec.name, stage=spec.stage)
                    for m in stage.mixers
                    if m != "none"
                }
                if variants:
                    slots.append((spec.name, variants))
            else:
                slots.append((spec.name, {spec.kind: spec}))
        return slots

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
                if chosen == "mixer":  # a slot placeholder (see slot_layers)
                    specs.append(LayerSpec("mixer", width, width, grid, name=f"{name}_mixer", stage=s + 1))
                elif chosen != "none":
                    specs.append(stage.mixer_spec(chosen, width, grid, name=f"{name}_mixer", stage=s + 1))
                specs.append(LayerSpec("ffn", width, width, grid, ratio=ratio(s, i), name=f"{name}_ffn", stage=s + 1))
            cin = width
        specs.append(
            LayerSpec(
                "head", cin, self.num_classes, grid, distillation=self.distillation, name="head", stage=len(self.stages) + 1
            )
        )
        return specs

    def cost_tables(self, cost) -> CostTables:
        """Vectorised totals and exact minimum of an additive per-layer cost ``cost(LayerSpec) -> float``."""
        return CostTables(self, cost)

    # ---- size and extremes ---------------------------------------------------------------------
    def size(self) -> int:
        """The number of distinct architectures in the space (exact)."""
        total = len(self.resolutions)
        for st in self.stages:
            per_block = len(st.ratios) * len(st.mixers)
            total *= len(st.widths) * sum(per_block**d for d in st.depths)
        return total

    def largest(self) -> Arch:
        """Deepest, widest, largest ratios, and the most expensive mixer each stage allows."""
        return self._extreme(max, MIXER_SIZE_ORDER)

    def smallest(self) -> Arch:
        return self._extreme(min, MIXER_SIZE_ORDER[::-1])

    def _extreme(self, pick, order) -> Arch:
        depths = [pick(st.depths) for st in self.stages]
        mixers = [next(m for m in order if m in st.mixers) for st in self.stages]
        return self.make(
            pick(self.resolutions),
            depths,
            [pick(st.widths) for st in self.stages],
            [[pick(st.ratios)] * d for st, d in zip(self.stages, depths)],
            [[m] * d for m, d in zip(mixers, depths)],
        )

    def make(self, resolution, depths, widths, ratios, mixers) -> Arch:
        """The architecture of this space with these genes (not checked: callers build valid ones)."""
        return Arch(
            self.ref,
            int(resolution),
            tuple(depths),
            tuple(widths),
            tuple(tuple(r) for r in ratios),
            tuple(tuple(m) for m in mixers),
        )

    # ---- variation (search_spaces.operators) -----------------------------------------------------
    def sample(self, rng: Any = None) -> Arch:
        """A uniformly random choice for every gene (see :func:`search_spaces.operators.sample`)."""
        return operators.sample(self, rng)

    def mutate(self, arch: Arch, rng: Any = None, prob: float = 0.1) -> Arch:
        """Each gene changed with probability `prob`, never `arch` itself (see :func:`operators.mutate`)."""
        return operators.mutate(self, arch, rng, prob)

    def crossover(self, a: Arch, b: Arch, rng: Any = None) -> Arch:
        """Uniform crossover of whole stages' depth and width and of blocks (see :func:`operators.crossover`)."""
        return operators.crossover(self, a, b, rng)

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every architecture one gene away (see :func:`operators.neighbours`)."""
        return operators.neighbours(self, arch)

    def shrink_actions(self, arch: Arch) -> list[tuple[str, Arch]]:
        """EfficientFormerV2's one-step shrinkings of `arch`, named (see :func:`operators.shrink_actions`)."""
        return operators.shrink_actions(self, arch)

    # ---- integer encoding ------------------------------------------------------------------------
    def genes(self) -> list[Gene]:
        """The genes in encoding order: resolution, then per stage its depth, width and, for every block
        up to the largest depth, ratio and mixer. Genes of blocks past the depth are ignored."""
        return list(self._genes)

    @cached_property
    def _genes(self) -> tuple[Gene, ...]:
        genes = [Gene("resolution", self.resolutions)]
        for s, st in enumerate(self.stages, 1):
            genes += [Gene("depth", st.depths, s), Gene("width", st.widths, s)]
            for i in range(max(st.depths)):
                genes += [Gene("ratio", st.ratios, s, i), Gene("mixer", st.mixers, s, i)]
        return tuple(genes)

    @cached_property
    def _gene_index(self) -> dict[Any, Gene]:
        index: dict[Any, Gene] = {}
        for gene in self._genes:
            key = (
                gene.field
                if gene.stage is None
                else ((gene.field, gene.stage) if gene.block is None else (gene.field, gene.stage, gene.block))
            )
            index[key] = gene
        return index

    def gene_index(self) -> dict[Any, Gene]:
        """Genes by ``"resolution"``, ``(field, stage)`` or ``(field, stage, block)`` (stages from 1)."""
        return self._gene_index

    def gene_columns(self) -> dict[Gene, int]:
        """Each gene's column in the encoding."""
        return {gene: i for i, gene in enumerate(self._genes)}

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

    def decode(self, codes: Sequence[int]) -> Arch:
        genes = self._genes
        if len(codes) != len(genes):
            raise SpaceError(f"expected {len(genes)} genes for space {self.name!r}, got {len(codes)}")
        for gene, code in zip(genes, codes):
            if not 0 <= int(code) < len(gene.choices):
                raise SpaceError(f"gene {gene.name}: index {code} out of range 0..{len(gene.choices) - 1}")
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
        return self.make(resolution, depths, widths, ratios, mixers)

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
                {
                    "depths": list(st.depths),
                    "widths": list(st.widths),
                    "ratios": list(st.ratios),
                    "mixers": list(st.mixers),
                    "downsample": st.downsample if s else "stem",
                    "mhsa_stride": st.mhsa_stride,
                    "sepvit_heads": st.sepvit_heads,
                    "sepvit_window": st.sepvit_window,
                }
                for s, st in enumerate(self.stages)
            ],
            "presets": self.preset_names,
        }

    # ---- derived spaces ----------------------------------------------------------------------------
    def derive(
        self, *, resolutions: Sequence[int] | None = None, num_classes: int | None = None, distillation: bool | None = None
    ) -> Space:
        """This space for another task: other input resolutions, classes or head, the same genes otherwise.

        Training on a 10-class data set at 64 pixels needs a head of 10 classes and a resolution the
        shipped space does not offer, while the shipped space (and its published parameter counts)
        must stay as it is. The derived space's ``ref`` is ``BASE?key=value&...`` (e.g.
        ``efficientformerv2?num_classes=10&resolutions=64``), which ``search_spaces.load`` understands,
        so its architectures load anywhere. Presets keep their genes; a preset resolution the derived
        space does not offer becomes its largest resolution.
        """
        overrides = dict(self.overrides)
        if resolutions is not None:
            overrides["resolutions"] = tuple(sorted({int(r) for r in resolutions}))
        if num_classes is not None:
            overrides["num_classes"] = int(num_classes)
        if distillation is not None:
            overrides["distillation"] = bool(distillation)
        return SPACES.derive(self.base, overrides)

    def with_overrides(self, ref: str, overrides: dict[str, Any]) -> Space:
        """A new space: this one (a base space) with `overrides` under reference `ref` (see derive)."""
        res = overrides.get("resolutions", self.resolutions)
        multiple = resolution_multiple(self.stages)
        if not res or any(r <= 0 or r % multiple for r in res):
            raise SpaceError(
                f"space {self.name!r}: resolutions must be positive multiples of {multiple}, got {', '.join(map(str, res))}"
            )
        num_classes = overrides.get("num_classes", self.num_classes)
        if num_classes <= 0:
            raise SpaceError(f"space {self.name!r}: num_classes must be positive, got {num_classes}")
        presets = {}
        for key, (data, lines) in self._preset_data.items():
            if isinstance(data, dict) and data.get("resolution") not in res:
                data = {**data, "resolution": max(res)}
            presets[key] = (data, lines)
        return Space(
            self.name,
            list(self.stages),
            res,
            num_classes=num_classes,
            distillation=overrides.get("distillation", self.distillation),
            description=self.description,
            source=self.source,
            ref=ref,
            presets=presets,
            base=self,
            overrides=overrides,
        )


def resolution_multiple(stages: Sequence[StageSpace]) -> int:
    """Every stage's map must halve exactly, and stride attention halves its stage's map once more."""
    return max([2 ** (len(stages) + 1)] + [2 ** (s + 3) for s, st in enumerate(stages) if st.mhsa_stride > 1])


@lru_cache(maxsize=65536)
def _layers(space: Space, arch: Arch) -> tuple[LayerSpec, ...]:
    space.check(arch)
    return tuple(
        space._plan(arch.resolution, arch.depths, arch.widths, lambda s, i: arch.ratios[s][i], lambda s, i: arch.mixers[s][i])
    )


def _not_offered(value: Any, what: str, choices: tuple) -> str:
    return f"{value!r} is not a {what} in this space (choices: {', '.join(map(str, choices))})"


__all__ = ["Space", "StageSpace", "ChoiceError", "DOWNSAMPLES", "resolution_multiple"]
