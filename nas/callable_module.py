"""Packages that are also functions: ``nas.search(...)`` and ``nas.export(...)`` call the package's main
function, while ``nas.search`` stays the package (so ``import nas.search.runs``, ``from nas.search import
SearchSettings`` and patching by dotted path all keep working)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Make the module `module_name` callable as `function`."""

    class CallableModule(types.ModuleType):
        __doc__ = sys.modules[module_name].__doc__

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule


__all__ = ["make_callable"]
