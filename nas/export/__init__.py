"""Export: an architecture as its file, or as a standalone model (PyTorch, TorchScript, ONNX, Core ML)
checked against PyTorch in its own runtime, with trained weights from a checkpoint when given.

``nas.export(arch, fmt, out, ...)`` calls :func:`export` (the package is callable, like ``nas.search``).
"""

from ..callable_module import make_callable
from .weights import load_supernet_weights, trained_model
from .writers import (
    DEFAULT_PRECISION,
    DEFAULT_TARGET,
    FORMATS,
    MODEL_FORMATS,
    TOLERANCE,
    ExportCheckFailed,
    check_request,
    export,
    metadata,
)

make_callable(__name__, export)

__all__ = [
    "export",
    "check_request",
    "metadata",
    "trained_model",
    "load_supernet_weights",
    "FORMATS",
    "MODEL_FORMATS",
    "TOLERANCE",
    "DEFAULT_PRECISION",
    "DEFAULT_TARGET",
    "ExportCheckFailed",
]
