"""The elastic EfficientFormerV2-style supernet, its layers and token mixers, and exact counting.

>>> import search_spaces, supernet
>>> space = search_spaces.load("efficientformerv2")
>>> net = supernet.build(space)
>>> net.set_active(space.preset("s0")); model = net.extract()
"""

from .elastic import SuperNet, build
from .layers import LAYER_CLASSES, Counts, build_layer, count_layer
from .mixers import MHSA, Additive, Separable
from .subnet import SubNet, count, count_tables, drop_path_rates

__all__ = ["SuperNet", "SubNet", "build", "build_layer", "count", "count_layer", "count_tables", "drop_path_rates", "Counts",
           "LAYER_CLASSES", "MHSA", "Separable", "Additive"]
