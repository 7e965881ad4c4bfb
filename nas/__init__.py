"""nas: hardware-aware neural architecture search for mobile vision transformers.

>>> import nas, search_spaces
>>> nas.evaluate(search_spaces.load("efficientformerv2").preset("s0"))["params"]
3600256
"""

from .archref import resolve_arch
from .errors import BadInput, Infeasible, NasError
from .evaluate import evaluate, stage_breakdown
from .export import export

__all__ = ["evaluate", "export", "resolve_arch", "stage_breakdown", "NasError", "BadInput", "Infeasible"]
