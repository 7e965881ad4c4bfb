"""The errors the command line turns into exit codes.

Bad input of every package is an :class:`~search_spaces.InputError` (exit code 2): this package's
own kind is :class:`BadInput`; search spaces raise ``SpaceError``, latency tables ``LUTError`` and
``BackendError``. :class:`Infeasible` (exit 3) says no architecture can meet a request; any other
:class:`NasError` is an expected failure with a one-line message (exit 1, like an internal error, but
without the traceback hint).
"""

from __future__ import annotations

from search_spaces import InputError


class NasError(Exception):
    """An expected failure with a one-line message for the user and an exit code."""

    exit_code = 1


class BadInput(InputError):
    """Malformed or unknown input to the search, training, export or command line: exit code 2."""


class Infeasible(NasError):
    """No architecture of the space meets the request: exit code 3."""

    exit_code = 3


def exit_code_of(exc: BaseException) -> int | None:
    """The exit code for an expected error, or None for an internal one."""
    if isinstance(exc, InputError | NasError):
        return exc.exit_code
    return None


__all__ = ["NasError", "BadInput", "Infeasible", "InputError", "exit_code_of"]
