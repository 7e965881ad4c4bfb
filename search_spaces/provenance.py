"""What produced a file: the tool's own version and the versions of the libraries that mattered.

Run files, checkpoints, latency tables and exported models each record this, from this one place,
so they all name versions the same way.
"""

from __future__ import annotations

import importlib
import platform
from importlib import metadata

from .errors import InputError

DISTRIBUTION = "nas-mobile-vit"


def package_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_version() -> str:
    """This tool's version ("unknown" when run from a checkout that is not installed)."""
    return package_version(DISTRIBUTION) or "unknown"


def versions(*packages: str) -> dict[str, str]:
    """``{"python": ..., "nas": ..., package: version, ...}`` for the installed ones of `packages`
    (read from the package metadata, so nothing is imported)."""
    out = {"python": platform.python_version(), "nas": tool_version()}
    for name in packages:
        version = package_version(name)
        if version is not None:
            out[name] = version
    return out


def require_extra(module: str, purpose: str, extra: str, error: type[InputError] = InputError) -> None:
    """Import `module` or raise `error` (one line) saying which extra of this package installs it, so an
    optional feature fails before any work is done or any file written."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise error(f"{purpose} needs {module.partition('.')[0]}: pip install '{DISTRIBUTION}[{extra}]'") from None


__all__ = ["package_version", "tool_version", "versions", "require_extra", "DISTRIBUTION"]
