"""Numbers with units as users type them: counts (``3M``, ``400K``, ``1.5G``), times (``1ms``, ``800us``,
``0.001s``) and plain positive numbers. Budgets, MES units and ``--pick`` rules all read them here."""

from __future__ import annotations

import math
import re

from .errors import BadInput

COUNT_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
TIME_UNIT = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3, "": 1.0}
_NUMBER = r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)"
#: metric keys whose values are counts, and times in milliseconds
COUNT_KEYS = ("params", "macs")
TIME_KEYS = ("latency_ms",)


def parse_quantity(key: str, raw: str, token: str, *, what: str = "budget") -> float:
    """The value `raw` of metric `key` (params and macs: counts; latency_ms: a time, in ms; anything
    else: a plain number). Errors name the whole `token` and say what is accepted."""
    text = raw.strip().lower()
    if key in TIME_KEYS:
        match = re.fullmatch(_NUMBER + r"\s*(ms|us|µs|s)?", text)
        scale = TIME_UNIT.get(match.group(2) or "") if match else None
        hint = "a time such as 1ms, 800us or 0.001s"
    elif key in COUNT_KEYS:
        match = re.fullmatch(_NUMBER + r"\s*([kmgb]?)", text)
        scale = COUNT_SUFFIX[match.group(2)] if match else None
        hint = "a count such as 3M, 400M, 1.5G or 3000000"
    else:
        match = re.fullmatch(_NUMBER, text)
        scale = 1.0 if match else None
        hint = "a positive number such as 50"
    if not match or scale is None:
        raise BadInput(f"{what} {token!r}: {raw!r} is not {hint}")
    value = float(match.group(1)) * scale
    if not math.isfinite(value):
        raise BadInput(f"{what} {token!r}: {raw!r} is too large")
    if value <= 0:
        raise BadInput(f"{what} {token!r}: must be positive")
    return value


__all__ = ["parse_quantity", "COUNT_KEYS", "TIME_KEYS"]
