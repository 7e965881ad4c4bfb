"""Device latency lookup tables: measuring backends, LUT files, building, prediction, validation.

Tables are keyed by :attr:`search_spaces.LayerSpec.key`, the same layer specs the models are built
from and the parameter/MAC counters sum over.

>>> import latency_lut, search_spaces
>>> lut = latency_lut.load("ci-cpu-onnxruntime")
>>> lut.predict(search_spaces.load("efficientformerv2").preset("s0"))  # ms
"""

from .backends import make_runner, measuring
from .build import build_lut
from .errors import BackendError, LUTError
from .registry import DEFAULT_DEVICE, list_luts, load, user_dir
from .table import BACKENDS, LUT, Calibration
from .timing import measure_interleaved

__all__ = [
    "LUT",
    "LUTError",
    "Calibration",
    "BACKENDS",
    "BackendError",
    "DEFAULT_DEVICE",
    "build_lut",
    "list_luts",
    "load",
    "make_runner",
    "measure_interleaved",
    "measuring",
    "user_dir",
]
