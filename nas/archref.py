"""Resolve what the user names as an architecture: a preset, a file, or a search result RUN_DIR#N."""

from __future__ import annotations

import json
from pathlib import Path

import search_spaces
from search_spaces import Arch, SpaceError

from .errors import BadInput

ARCH_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def resolve_arch(ref: str, space: str = "efficientformerv2") -> Arch:
    """A preset name of `space` (``s0``, ``efficientformerv2_s0``), an architecture file, or ``RUN_DIR#N``."""
    ref = ref.strip()
    if not ref:
        raise BadInput("empty architecture: give a preset name, an architecture file or RUN_DIR#N")
    if "#" in ref and not Path(ref).exists():
        return _from_run(ref)
    path = Path(ref)
    if path.is_file():
        return Arch.from_file(path)
    if path.suffix.lower() in ARCH_FILE_SUFFIXES or path.is_dir():
        raise BadInput(f"no such architecture file: {ref}")
    loaded = search_spaces.load(space)
    try:
        return loaded.preset(ref)
    except SpaceError:
        presets = ", ".join(loaded.preset_names) or "none"
        raise BadInput(f"unknown architecture {ref!r}: not a preset of space {loaded.name!r} ({presets}), "
                       "an architecture file (.yaml/.json) or RUN_DIR#N") from None


def _from_run(ref: str) -> Arch:
    run_dir, _, number = ref.rpartition("#")
    pareto = Path(run_dir) / "pareto.json"
    if not pareto.is_file():
        raise BadInput(f"{ref}: no search run at {run_dir!r} (expected {pareto})")
    try:
        result = json.loads(pareto.read_text(encoding="utf-8"))
        entries = result["pareto"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{pareto}: not a readable search result ({exc})") from None
    for entry in entries:
        if str(entry.get("id", "")).rpartition("#")[2] == number:
            return Arch.from_dict(entry["arch"], source=f"{pareto} entry #{number}")
    ids = ", ".join("#" + str(e.get("id", "")).rpartition("#")[2] for e in entries) or "none"
    raise BadInput(f"{ref}: run {run_dir!r} has no entry #{number} on its Pareto front (entries: {ids})")
