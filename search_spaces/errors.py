"""The error family every package raises for bad input, so the command line maps them to one exit code.

An :class:`InputError` is something the user can fix: a malformed value, an unknown name, a file
that cannot be read or written. Its message is one line that names the bad value and what is
accepted; the command line prints it as ``nas: error: ...`` and exits with :attr:`exit_code` (2).
Each package has its own subclass (a latency-table error is not a search-space error), all of them
caught the same way.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: one line for the user, exit code 2 on the command line."""

    exit_code = 2


class SpaceError(InputError):
    """A bad space, architecture, or file holding one."""


class FileWriteError(InputError):
    """An output that cannot be written (missing directory, permission, full disk); nothing was lost."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message as one short line for a user (its type when the message is empty)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


__all__ = ["InputError", "SpaceError", "FileWriteError", "first_line"]
