"""One validator for the values of architecture and space files, so both accept and refuse alike.

A :class:`Fields` knows the file (`source`) and the line of every value (`lines`, from
:mod:`search_spaces.yamlio`), so each check fails with ``FILE line N: key.path: what is wrong``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import SpaceError
from .layers import MIXER_KINDS
from .yamlio import where


def is_int(value: Any) -> bool:
    """An integer that is not a bool (YAML's ``yes`` is True, which Python counts as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def normal_number(value: float) -> float | int:
    """3.0 -> 3, so ratios compare and print alike however the file wrote them."""
    return int(value) if float(value).is_integer() else float(value)


class Fields:
    """Checks of one file's values; every failure names the file, line and key path."""

    def __init__(self, source: str, lines: Mapping[tuple, int] | None = None, prefix: tuple = ()):
        self.source, self.lines, self.prefix = source, lines or {}, prefix

    def fail(self, path: tuple, message: str) -> SpaceError:
        return SpaceError(f"{where(self.source, self.lines, self.prefix + path)}: {message}")

    def mapping(
        self, path: tuple, value: Any, keys: Sequence[str], required: Sequence[str] = (), what: str = "a mapping"
    ) -> Mapping[str, Any]:
        """`value` as a mapping whose keys are among `keys` and hold every one of `required`."""
        if not isinstance(value, dict):
            raise self.fail(path, f"expected {what} with keys {', '.join(keys)}, got {type(value).__name__}")
        for key in value:
            if key not in keys:
                raise self.fail(path + (key,), f"unknown key {key!r} (accepted: {', '.join(keys)})")
        for key in required:
            if key not in value:
                raise self.fail(path, f"missing key {key!r}")
        return value

    def positive_int(self, path: tuple, value: Any) -> int:
        if not is_int(value) or value <= 0:
            raise self.fail(path, f"expected a positive integer, got {value!r}")
        return int(value)

    def positive_number(self, path: tuple, value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
            raise self.fail(path, f"expected a positive number, got {value!r}")
        return normal_number(value)

    def mixer(self, path: tuple, value: Any) -> str:
        """A mixer name; YAML's null and false (a bare ``no``) mean ``none``."""
        if value is None or value is False:
            value = "none"
        if not isinstance(value, str) or value not in MIXER_KINDS:
            raise self.fail(path, f"unknown mixer {value!r} (accepted: {', '.join(MIXER_KINDS)})")
        return value

    def boolean(self, path: tuple, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {value!r}")
        return value

    def text(self, path: tuple, value: Any, what: str = "a non-empty name") -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected {what}, got {value!r}")
        return value.strip()

    def items(
        self, path: tuple, value: Any, check, *, length: int | None = None, what: str = "values", unique: bool = False
    ) -> tuple:
        """A non-empty list (of `length` items when given), each item passed through ``check(path, item)``."""
        if not isinstance(value, list) or not value or (length is not None and len(value) != length):
            size = f"{length} " if length is not None else "a non-empty list of "
            raise self.fail(path, f"expected {size}{what}, got {value!r}")
        out = []
        for i, item in enumerate(value):
            item = check(path + (i,), item)
            if unique and item in out:
                raise self.fail(path + (i,), f"duplicate choice {item!r}")
            out.append(item)
        return tuple(out)


__all__ = ["Fields", "is_int", "normal_number"]
