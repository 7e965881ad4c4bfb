"""Errors the command line turns into exit codes (SPEC section 4)."""

from __future__ import annotations

from search_spaces import SpaceError


class NasError(Exception):
    """Base of errors with a one-line message for the user and an exit code."""

    exit_code = 1


class BadInput(NasError):
    """Malformed or unknown input: exit code 2."""

    exit_code = 2


class Infeasible(NasError):
    """No architecture of the space meets the request: exit code 3."""

    exit_code = 3


def exit_code_of(exc: BaseException) -> int | None:
    """The exit code for an expected error, or None for an internal one."""
    if isinstance(exc, NasError):
        return exc.exit_code
    if isinstance(exc, SpaceError):  # includes latency_lut.LUTError
        return 2
    from latency_lut.backends import BackendError

    if isinstance(exc, BackendError):
        return 2
    return None
