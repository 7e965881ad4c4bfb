"""A resumed run keeps the settings it was started with: the one check that says which options may
change (a search's ``--trials``; a training's ``--epochs``, ...) and refuses any other that differs."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .errors import BadInput


def option_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def resumed_settings(
    stored: Mapping[str, Any], given: Mapping[str, Any], *, may_change: Collection[str], where: str, hint: str
) -> dict[str, Any]:
    """`stored` with the options of `given` that are not None and may change applied; BadInput when any
    other given option differs from its stored value (`where` says whose value, e.g. ``the checkpoint's``;
    `hint` what to do instead)."""
    settings = dict(stored)
    for key, value in given.items():
        if value is None:
            continue
        if key in may_change:
            settings[key] = value
        elif key in stored and stored[key] != value:
            raise BadInput(f"{option_name(key)} {_shown(value)} differs from {where} {_shown(stored[key])} ({hint})")
    return settings


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


__all__ = ["resumed_settings", "option_name"]
