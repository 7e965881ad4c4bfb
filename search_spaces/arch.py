"""The architecture type: one point of a search space, as an architecture file describes it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .layers import MIXER_KINDS, LayerSpec
from .yamlio import SpaceError, dump_yaml, load_file, where

if TYPE_CHECKING:
    from .space import Space

ARCH_KEYS = ("space", "resolution", "depths", "widths", "ratios", "mixers")
DEFAULT_SPACE = "efficientformerv2"


def _normalise_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


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
        cls, data: Any, *, source: str = "architecture", lines: dict[tuple, int] | None = None,
        prefix: tuple = (), space: str | None = None,
    ) -> Arch:
        """Build and validate an architecture from plain data (as loaded from YAML or JSON).

        Errors name the file, line and key of the bad value. The result is checked against its space.
        """
        lines = lines or {}

        def fail(path: tuple, message: str) -> SpaceError:
            return SpaceError(f"{where(source, lines, prefix + path)}: {message}")

        if not isinstance(data, dict):
            raise fail((), f"expected a mapping with keys {', '.join(ARCH_KEYS)}, got {type(data).__name__}")
        unknown = [k for k in data if k not in ARCH_KEYS]
        if unknown:
            raise fail((unknown[0],), f"unknown key {unknown[0]!r} (accepted: {', '.join(ARCH_KEYS)})")
        space_ref = data.get("space", space or DEFAULT_SPACE)
        if not isinstance(space_ref, str) or not space_ref:
            raise fail(("space",), "expected a space name or a path to a space file")
        for key in ARCH_KEYS[1:]:
            if key not in data:
                raise fail((), f"missing key {key!r}")

        resolution = data["resolution"]
        if not _is_int(resolution) or resolution <= 0:
            raise fail(("resolution",), f"expected a positive integer, got {resolution!r}")

        def int_list(key: str) -> tuple[int, ...]:
            value = data[key]
            if not isinstance(value, list) or not value:
                raise fail((key,), f"expected a non-empty list of integers, got {value!r}")
            for i, item in enumerate(value):
                if not _is_int(item) or item <= 0:
                    raise fail((key, i), f"expected a positive integer, got {item!r}")
            return tuple(value)

        depths, widths = int_list("depths"), int_list("widths")
        if len(widths) != len(depths):
            raise fail(("widths",), f"has {len(widths)} stages but depths has {len(depths)}")

        def per_block(key: str, check) -> tuple[tuple, ...]:
            value = data[key]
            if not isinstance(value, list) or len(value) != len(depths):
                raise fail((key,), f"expected one list per stage ({len(depths)} lists), got {value!r}")
            out = []
            for s, stage in enumerate(value):
                if not isinstance(stage, list) or len(stage) != depths[s]:
                    raise fail((key, s), f"stage {s + 1} has depth {depths[s]}, so expected {depths[s]} values, got {stage!r}")
                items = []
                for i, item in enumerate(stage):
                    ok, normal = check(item)
                    if not ok:
                        raise fail((key, s, i), normal)
                    items.append(normal)
                out.append(tuple(items))
            return tuple(out)

        def check_ratio(item: Any) -> tuple[bool, Any]:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0:
                return False, f"expected a positive number, got {item!r}"
            return True, _normalise_number(item)

        def check_mixer(item: Any) -> tuple[bool, Any]:
            if item is None or item is False:  # YAML reads a bare `none`/`no` as a string, `null` as None
                item = "none"
            if item not in MIXER_KINDS:
                return False, f"unknown mixer {item!r} (accepted: {', '.join(MIXER_KINDS)})"
            return True, item

        arch = cls(
            space=space_ref, resolution=int(resolution), depths=depths, widths=widths,
            ratios=per_block("ratios", check_ratio), mixers=per_block("mixers", check_mixer),
        )
        try:
            arch.search_space.check(arch)
        except SpaceError as exc:
            # The space names the key; add where the value came from when we know it.
            path = getattr(exc, "path", None)
            if path is not None:
                raise SpaceError(f"{where(source, lines, prefix + path)}: {exc.args[0]}") from None
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
        """Write YAML, or JSON when the file name ends in .json."""
        path = Path(path)
        text = self.to_json() + "\n" if path.suffix.lower() == ".json" else self.to_yaml()
        path.write_text(text, encoding="utf-8")

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
        from .space import load

        return load(self.space)

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
