"""The latency tables' errors: bad input of this package's own kind (exit code 2 on the command line)."""

from __future__ import annotations

from search_spaces import InputError


class LUTError(InputError):
    """A bad, corrupted or mismatched latency table or measurement file, or a missing entry."""


class BackendError(InputError):
    """A backend or converter that cannot run here (missing package, no GPU, not macOS, bad option)."""


__all__ = ["LUTError", "BackendError"]
