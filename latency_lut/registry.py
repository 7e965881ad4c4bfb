"""Where latency tables live: shipped in the package, or built by the user (``$NAS_HOME/luts``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs

from .errors import LUTError
from .table import LUT

SHIPPED_DIR = Path(__file__).parent / "tables"
#: The device `nas search` and `nas arch show` use when none is named.
DEFAULT_DEVICE = "iphone12-coreml"


def user_dir() -> Path:
    """User-built tables: ``$NAS_HOME/luts``, else ``luts`` in the platform's user data directory
    (``~/.local/share/nas`` on Linux, or ``$XDG_DATA_HOME/nas``; ``~/Library/Application Support/nas`` on macOS)."""
    home = os.environ.get("NAS_HOME") or platformdirs.user_data_dir("nas", appauthor=False)
    return Path(home) / "luts"


def _candidates() -> list[tuple[Path, bool]]:
    found = [(p, True) for p in sorted(SHIPPED_DIR.glob("*.json"))]
    if user_dir().is_dir():
        found += [(p, False) for p in sorted(user_dir().glob("*.json")) if not p.name.endswith(".partial.json")]
    return found


def list_luts() -> list[dict[str, Any]]:
    """Every available table: device, backend, provenance, threads, entries, path, default, shipped, date."""
    out = []
    for path, shipped in _candidates():
        try:
            lut = LUT.read(path)
        except LUTError as exc:
            out.append({"device": path.stem, "error": str(exc), "path": str(path), "shipped": shipped, "default": False})
            continue
        out.append(
            {
                "device": lut.device,
                "backend": lut.backend,
                "provenance": lut.provenance,
                "threads": lut.threads,
                "entries": len(lut.entries),
                "path": str(path),
                "default": lut.device == DEFAULT_DEVICE,
                "shipped": shipped,
                "space": lut.meta.get("space_name", lut.meta["space"]),
                "date": lut.meta["date"],
            }
        )
    return out


_CACHE: dict[Path, tuple[int, LUT]] = {}


def _read_cached(path: Path) -> LUT:
    """Read a table once per file version (modification time), so repeated evaluations do not re-parse it."""
    stamp = path.stat().st_mtime_ns
    cached = _CACHE.get(path.resolve())
    if cached is None or cached[0] != stamp:
        cached = (stamp, LUT.read(path))
        _CACHE[path.resolve()] = cached
    return cached[1]


def load(device: str | None = None) -> LUT:
    """The table of a device name (user-built tables shadow shipped ones), or a table file by path."""
    name = device or DEFAULT_DEVICE
    path = Path(name)
    if path.suffix == ".json" and path.exists():
        return _read_cached(path)
    for candidate in (user_dir() / f"{name}.json", SHIPPED_DIR / f"{name}.json"):
        if candidate.is_file():
            lut = _read_cached(candidate)
            if lut.device != name:
                raise LUTError(f"{candidate}: holds device {lut.device!r}, not {name!r}")
            return lut
    known = sorted({p.stem for p, _ in _candidates()})
    raise LUTError(f"unknown device {name!r} (available: {', '.join(known) or 'none'}; build one with 'nas lut build')")
