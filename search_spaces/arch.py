"""The architecture type: one point of a search space, as an architecture file describes it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import atomic_write_text
from .layers import LayerSpec
from .validate import Fields
from .yamlio import SpaceError, dump_yaml, load_file

if TYPE_CHECKING:
    from .space import Space

ARCH_KEYS = ("space", "resolution", "depths", "widths", "ratios", "mixers")
#: The space of architecture files that name none, of ``nas search`` and of presets named without one.
DEFAULT_SPACE = "efficientformerv2"


class SpaceLookup:
    """How architectures and spaces reach the registry of loaded spaces without importing it.

    The registry (``search_spaces.registry``) parses space files into :class:`~search_spaces.Space`
    objects, so it depends on this module and on ``space``; it installs its ``load`` and ``derive``
    here when it is imported (the package's ``__init__`` imports it)."""

    load: Callable[[str], Space]
    derive: Callable[[Space, dict[str, Any]], Space]
    is_known: Callable[[str], bool]

    def install(
        self, load: Callable[[str], Space], derive: Callable[[Space, dict[str, Any]], Space], is_known: Callable[[str], bool]
    ) -> None:
        self.load, self.derive, self.is_known = load, derive, is_known


SPACES = SpaceLookup()


@dataclass(frozen=True)
class Arch:
    """A concrete subnet: depth and width per stage, FFN ratio and token mixer per block.

    ``space`` is the name of a shipped space or a path to a space file. Instances are immutable,
    hashable and compare by value, so they can key caches and sets.
    """

    space: str
    resolution: int
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    ratios: tuple[tuple[float, ...], ...]
    mixers: tuple[tuple[str, ...], ...]

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        source: str = "architecture",
        lines: dict[tuple, int] | None = None,
        prefix: tuple = (),
        space: str | None = None,
    ) -> Arch:
        """Build and validate an architecture from plain data (as loaded from YAML or JSON).

        Errors name the file, line and key of the bad value. The result is checked against its space.
        """
        f = Fields(source, lines, prefix)
        f.mapping((), data, ARCH_KEYS, ARCH_KEYS[1:])
        space_ref = data.get("space", space or DEFAULT_SPACE)
        if not isinstance(space_ref, str) or not space_ref:
            raise f.fail(("space",), "expected a space name or a path to a space file")
        if not SPACES.is_known(space_ref):
            raise f.fail(
                ("space",),
                f"{space_ref!r} is not a shipped space; an architecture file may name another "
                f"space only once its file is loaded (e.g. --space {space_ref})",
            )
        resolution = f.positive_int(("resolution",), data["resolution"])
        depths = f.items(("depths",), data["depths"], f.positive_int, what="integers")
        widths = f.items(("widths",), data["widths"], f.positive_int, what="integers")
        if len(widths) != len(depths):
            raise f.fail(("widths",), f"has {len(widths)} stages but depths has {len(depths)}")

        def per_block(key: str, check) -> tuple[tuple, ...]:
            value = data[key]
            if not isinstance(value, list) or len(value) != len(depths):
                raise f.fail((key,), f"expected one list per stage ({len(depths)} lists), got {value!r}")
            out = []
            for s, stage in enumerate(value):
                if not isinstance(stage, list) or len(stage) != depths[s]:
                    raise f.fail((key, s), f"stage {s + 1} has depth {depths[s]}, so expected {depths[s]} values, got {stage!r}")
                out.append(tuple(check((key, s, i), item) for i, item in enumerate(stage)))
            return tuple(out)

        arch = cls(
            space=space_ref,
            resolution=resolution,
            depths=depths,
            widths=widths,
            ratios=per_block("ratios", f.positive_number),
            mixers=per_block("mixers", f.mixer),
        )
        try:
            arch.search_space.check(arch)
        except SpaceError as exc:
            # The space names the key; add where the value came from when we know it.
            path = getattr(exc, "path", None)
            if path is not None:
                raise f.fail(path, exc.args[0]) from None
            raise SpaceError(f"{source}: {exc}") from None
        return arch

    @classmethod
    def from_file(cls, path: str | Path) -> Arch:
        """Read an architecture file (YAML or JSON)."""
        data, lines = load_file(path)
        return cls.from_dict(data, source=str(path), lines=lines)

    from_yaml = from_file
    from_json = from_file

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "resolution": self.resolution,
            "depths": list(self.depths),
            "widths": list(self.widths),
            "ratios": [list(r) for r in self.ratios],
            "mixers": [list(m) for m in self.mixers],
        }

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write YAML, or JSON when the file name ends in .json (atomically)."""
        path = Path(path)
        atomic_write_text(path, self.to_json() + "\n" if path.suffix.lower() == ".json" else self.to_yaml())

    # ---- identity -----------------------------------------------------------------------------
    @cached_property
    def id(self) -> str:
        """Stable canonical id: a hash of the architecture under its space's declared name."""
        data = self.to_dict()
        data["space"] = self.search_space.name
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode()).hexdigest()[:12]

    # ---- views --------------------------------------------------------------------------------
    @cached_property
    def search_space(self) -> Space:
        return SPACES.load(self.space)

    def layers(self) -> tuple[LayerSpec, ...]:
        """The network as layer specs (the unit of building, counting and latency tables)."""
        return self.search_space.layers(self)

    def mutate(self, rng: Any = None, prob: float = 0.1) -> Arch:
        return self.search_space.mutate(self, rng, prob)

    def crossover(self, other: Arch, rng: Any = None) -> Arch:
        return self.search_space.crossover(self, other, rng)

    def encode(self) -> list[int]:
        return self.search_space.encode(self)

    def __str__(self) -> str:
        return f"Arch({self.search_space.name}#{self.id}: r{self.resolution} d{list(self.depths)} w{list(self.widths)})"


__all__ = ["Arch", "ARCH_KEYS", "DEFAULT_SPACE", "SPACES"]
