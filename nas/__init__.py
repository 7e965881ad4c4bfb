"""nas: hardware-aware neural architecture search for mobile vision transformers.

The public API (the command line is a thin layer over it):

>>> import nas, search_spaces
>>> nas.evaluate(search_spaces.load("efficientformerv2").preset("s0"))["params"]
3600256
>>> result = nas.search("efficientformerv2", budget={"params": 3e6, "latency_ms": 1.0}, trials=200)  # doctest: +SKIP
>>> result.pareto[0]["id"]  # doctest: +SKIP
"""

from . import export, search  # packages, and callable: nas.search(space, budget=...), nas.export(arch, ...)
from .errors import BadInput, Infeasible, NasError
from .evaluate import evaluate, stage_breakdown
from .search import Problem, SearchResult, SearchSettings, resolve_arch

__all__ = [
    "search",
    "SearchSettings",
    "SearchResult",
    "Problem",
    "evaluate",
    "export",
    "resolve_arch",
    "stage_breakdown",
    "NasError",
    "BadInput",
    "Infeasible",
]
