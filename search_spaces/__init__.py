"""Search spaces for mobile vision transformers: space files, the architecture type, layer specs.

The lowest package: it imports nothing of the others, and also owns the few helpers they all share
(:mod:`~search_spaces.errors` for bad input, :mod:`~search_spaces.files` for reading and atomic
writing, :mod:`~search_spaces.provenance` for version records).

>>> import search_spaces
>>> space = search_spaces.load("efficientformerv2")
>>> arch = space.preset("s0")
"""

from .arch import DEFAULT_SPACE, Arch
from .errors import FileWriteError, InputError, SpaceError
from .genes import Gene
from .layers import LAYER_KINDS, MIXER_KINDS, LayerSpec
from .registry import is_known, list_spaces, load, register_text
from .space import Space, StageSpace

__all__ = [
    "Arch",
    "DEFAULT_SPACE",
    "Gene",
    "LayerSpec",
    "LAYER_KINDS",
    "MIXER_KINDS",
    "Space",
    "SpaceError",
    "InputError",
    "FileWriteError",
    "StageSpace",
    "is_known",
    "list_spaces",
    "load",
    "register_text",
]
