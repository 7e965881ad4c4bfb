"""The elastic EfficientFormerV2-style supernet, its layers and token mixers, and exact counting.

>>> import search_spaces, supernet
>>> space = search_spaces.load("efficientformerv2")
>>> net = supernet.build(space)
>>> net.set_active(space.preset("s0")); model = net.extract()
"""

from .batchnorm import recalibrate_bn
from .counting import Counts, count, count_layer, count_tables
from .elastic import SubnetView, SuperNet, build
from .layers import LAYER_CLASSES, build_layer
from .mixers import MHSA, Additive, Separable, SepViT
from .subnet import SubNet, drop_path_rates

__all__ = [
    "SuperNet",
    "SubNet",
    "SubnetView",
    "build",
    "build_layer",
    "count",
    "count_layer",
    "count_tables",
    "drop_path_rates",
    "recalibrate_bn",
    "Counts",
    "LAYER_CLASSES",
    "MHSA",
    "Separable",
    "Additive",
    "SepViT",
]
