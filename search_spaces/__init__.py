"""Search spaces for mobile vision transformers: space files, the architecture type, layer specs.

>>> import search_spaces
>>> space = search_spaces.load("efficientformerv2")
>>> arch = space.preset("s0")
"""

from .arch import Arch
from .layers import LAYER_KINDS, MIXER_KINDS, LayerSpec
from .space import Space, StageSpace, list_spaces, load
from .yamlio import SpaceError

__all__ = ["Arch", "LayerSpec", "LAYER_KINDS", "MIXER_KINDS", "Space", "SpaceError", "StageSpace", "list_spaces", "load"]
