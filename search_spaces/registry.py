"""The spaces a process knows: shipped ones by name, space files by path, derived spaces by their
``BASE?key=value`` reference, and spaces registered from saved YAML text; parsed and validated once.

One dictionary maps each reference to its :class:`~search_spaces.Space`, so every architecture naming
that reference shares the same object (and whatever is cached per space: cost tables, latency arrays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .arch import SPACES
from .errors import SpaceError
from .files import read_text
from .space import DOWNSAMPLES, Space, StageSpace, resolution_multiple
from .validate import Fields
from .yamlio import load_text

SPACES_DIR = Path(__file__).parent / "spaces"
SPACE_KEYS = ("name", "description", "resolutions", "num_classes", "distillation", "stages", "presets")
STAGE_KEYS = ("depths", "widths", "ratios", "mixers", "downsample", "mhsa_stride", "sepvit_heads", "sepvit_window")
#: bounds on the SepViT settings (a hostile file must not make the supernet allocate without limit)
SEPVIT_MAX_HEADS, SEPVIT_WINDOWS = 32, (2, 64)
SPACE_FILE_SUFFIXES = (".yaml", ".yml", ".json")

_SPACES: dict[str, Space] = {}


def list_spaces() -> list[str]:
    """Names of the spaces shipped with the package."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load(name_or_path: str | Path) -> Space:
    """A shipped space by name, a space YAML file by path, or a derived space ``BASE?key=value&...``."""
    ref = str(name_or_path)
    space = _SPACES.get(ref)
    if space is not None:
        return space
    if "?" in ref and not Path(ref).exists():  # a derived space: BASE?key=value&...
        base, _, overrides = ref.rpartition("?")
        return load(base).derive(**_parse_overrides(ref, overrides))
    if ref in list_spaces():
        path = SPACES_DIR / f"{ref}.yaml"
    else:
        path = Path(ref)
        if not (path.suffix.lower() in SPACE_FILE_SUFFIXES or path.exists()):
            raise SpaceError(f"unknown space {ref!r} (shipped: {', '.join(list_spaces())}; or give a path to a space YAML)")
        if not path.is_file():
            raise SpaceError(f"no such space file: {ref}")
        path = path.resolve()
    text = read_text(path, error=SpaceError)
    data, lines = load_text(text, str(path))
    space = _SPACES[ref] = parse_space(data, lines, str(path), ref)
    space.yaml_text = text
    return space


def register_text(ref: str, text: str) -> Space:
    """A space from YAML text, loadable as `ref` from now on: a space file saved elsewhere (e.g. in a
    training checkpoint) whose path does not exist on this machine."""
    data, lines = load_text(text, ref)
    space = _SPACES[ref] = parse_space(data, lines, ref, ref)
    space.yaml_text = text
    return space


def is_known(ref: str) -> bool:
    """Whether a file may name space `ref` (an architecture file, a latency table, a checkpoint): a shipped
    space, one already loaded in this process (the user named its file, e.g. with ``--space``), or a
    space derived from one of those. A file naming any other path is refused rather than followed, so
    a file of the tool can never make it open an arbitrary file."""
    if ref in _SPACES or ref in list_spaces():
        return True
    base, sep, _ = ref.rpartition("?")
    return bool(sep) and is_known(base)


def derive(base: Space, overrides: dict[str, Any]) -> Space:
    """The space `base` with `overrides` (see :meth:`Space.derive`), one object per reference."""
    if not overrides:
        return base
    items = sorted(overrides.items())
    ref = base.ref + "?" + "&".join(f"{k}={_override_text(v)}" for k, v in items)
    space = _SPACES.get(ref)
    if space is None:
        space = _SPACES[ref] = base.with_overrides(ref, dict(items))
    return space


SPACES.install(load, derive, is_known)


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
            raise SpaceError(
                f"space {ref!r}: bad override {item!r} (accepted: resolutions=R[,R...], num_classes=N, distillation=true|false)"
            ) from None
    return out


def parse_space(data: Any, lines: dict[tuple, int], source: str, ref: str) -> Space:
    """Validate a space file's data (errors name the file, line and key) and build the space."""
    f = Fields(source, lines)
    f.mapping((), data, SPACE_KEYS, ("name", "resolutions", "stages"), what="a space file: a mapping")
    name = f.text(("name",), data["name"])

    def choices(path: tuple, value: Any, check) -> tuple:
        return tuple(sorted(f.items(path, value, check, what="choices", unique=True)))

    stages_data = data["stages"]
    if not isinstance(stages_data, list) or not stages_data:
        raise f.fail(("stages",), "expected a non-empty list of stages")
    stages = []
    for s, st in enumerate(stages_data):
        path = ("stages", s)
        f.mapping(path, st, STAGE_KEYS, STAGE_KEYS[:4])
        downsample = st.get("downsample", "conv")
        if downsample not in DOWNSAMPLES:
            raise f.fail(path + ("downsample",), f"expected one of {', '.join(DOWNSAMPLES)}, got {downsample!r}")
        if s == 0 and "downsample" in st:
            raise f.fail(path + ("downsample",), "the first stage is entered by the stem; remove this key")
        stride = st.get("mhsa_stride", 1)
        if stride not in (1, 2) or isinstance(stride, bool):
            raise f.fail(path + ("mhsa_stride",), f"expected 1 or 2, got {stride!r}")
        widths = choices(path + ("widths",), st["widths"], f.positive_int)
        if s == 0 and any(w % 2 for w in widths):
            raise f.fail(path + ("widths",), "stage 1 widths must be even (the stem's first conv has half of them)")
        mixers = f.items(path + ("mixers",), st["mixers"], f.mixer, what="choices", unique=True)  # file order
        heads = f.positive_int(path + ("sepvit_heads",), st.get("sepvit_heads", StageSpace.sepvit_heads))
        if heads > SEPVIT_MAX_HEADS:
            raise f.fail(path + ("sepvit_heads",), f"expected at most {SEPVIT_MAX_HEADS} heads, got {heads}")
        window = f.positive_int(path + ("sepvit_window",), st.get("sepvit_window", StageSpace.sepvit_window))
        if not SEPVIT_WINDOWS[0] <= window <= SEPVIT_WINDOWS[1]:
            low, high = SEPVIT_WINDOWS
            raise f.fail(path + ("sepvit_window",), f"expected a window side of {low} to {high}, got {window}")
        stages.append(
            StageSpace(
                depths=choices(path + ("depths",), st["depths"], f.positive_int),
                widths=widths,
                ratios=choices(path + ("ratios",), st["ratios"], f.positive_number),
                mixers=mixers,
                downsample=downsample,
                mhsa_stride=stride,
                sepvit_heads=heads,
                sepvit_window=window,
            )
        )

    resolutions = choices(("resolutions",), data["resolutions"], f.positive_int)
    multiple = resolution_multiple(stages)
    for i, res in enumerate(data["resolutions"]):  # file order, so the error points at the right item
        if res % multiple:
            raise f.fail(
                ("resolutions", i), f"{res} is not a multiple of {multiple} (needed by this space's stages and stride attention)"
            )
    for s, stage in enumerate(stages):
        grid = max(resolutions) // 2 ** (s + 2)
        if "sepvit" in stage.mixers and grid <= stage.sepvit_window:
            raise f.fail(
                ("stages", s, "mixers"),
                f"sepvit needs a map of several windows, but stage {s + 1}'s map is at most {grid} px for a window of "
                f"{stage.sepvit_window} (one window is plain attention: use mhsa, or a smaller sepvit_window)",
            )
    num_classes = f.positive_int(("num_classes",), data.get("num_classes", 1000))
    distillation = f.boolean(("distillation",), data.get("distillation", True))
    presets = data.get("presets") or {}
    if not isinstance(presets, dict):
        raise f.fail(("presets",), "expected a mapping of preset names to architectures")
    return Space(
        name,
        stages,
        resolutions,
        num_classes=num_classes,
        distillation=distillation,
        description=str(data.get("description", "")).strip(),
        source=source,
        ref=ref,
        presets={str(k).lower(): (v, lines) for k, v in presets.items()},
    )


__all__ = ["load", "list_spaces", "register_text", "derive", "is_known", "parse_space", "SPACES_DIR"]
