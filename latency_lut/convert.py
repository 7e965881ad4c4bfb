"""Model conversion: a torch module as an ONNX graph or a Core ML ML program.

One converter per format for the whole project: the timing backends measure what these produce,
``nas lut export-blocks`` writes their Core ML packages, and ``nas export`` writes whole models with
them, so a table is measured on exactly the graphs users deploy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import torch
from torch import nn

from search_spaces.provenance import require_extra

from .errors import BackendError


def onnx_bytes(
    module: nn.Module, shape: tuple[int, ...], opset: int = 17, *, output_name: str = "output", dynamic_batch: bool = False
) -> bytes:
    """The legacy (TorchScript-based) ONNX export, which ONNX Runtime runs fastest here (input ``input``;
    a fixed batch unless `dynamic_batch`, which costs a few percent of speed)."""
    buffer = io.BytesIO()
    axes = {"input": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation and traces shape math
        torch.onnx.export(
            module.eval(),
            (torch.randn(*shape),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=[output_name],
            dynamic_axes=axes,
        )
    return buffer.getvalue()


COREML_MIN_TARGET = "iOS15"  # ML programs need iOS 15 / macOS 12


def coreml_targets() -> list[str]:
    """The deployment targets an ML program can have (``iOS16``, ``macOS13``, ...)."""
    ct = _coremltools()
    floor = ct.target[COREML_MIN_TARGET]
    return [name for name, value in ct.target.__members__.items() if value >= floor]


def _coremltools():
    with _quiet_coremltools(progress=True):  # its import logs that it lacks the macOS runtime, and torch's version
        require_extra("coremltools", "Core ML conversion", "export", BackendError)
        import coremltools
    return coremltools


@contextlib.contextmanager
def _quiet_coremltools(progress: bool):
    """Silence coremltools' chatter (logging, warnings) and, unless `progress`, its tqdm bars, which it
    draws on stderr unconditionally."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")
            if not progress:
                stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
            yield
    finally:
        logger.setLevel(level)


def coreml_model(
    module: nn.Module,
    shape: tuple[int, ...],
    *,
    precision: str = "fp16",
    target: str = "iOS16",
    output_name: str | None = None,
    float32_io: bool = False,
    progress: bool = False,
):
    """`module` as a Core ML ML program (a ``coremltools.models.MLModel``; input named ``input``).

    The one converter of the project (per-layer packages, whole-model export, the coreml backend). It
    goes through ``torch.export``: coremltools 9 converts traced TorchScript only with numpy < 2.4,
    while its torch.export frontend works with any numpy. `float32_io` keeps the model's input and
    output float32 (what apps and numpy hand it) whatever the compute `precision`.
    """
    with _quiet_coremltools(progress):
        ct = _coremltools()
        if target not in coreml_targets():
            raise BackendError(f"unknown Core ML target {target!r} (accepted: {', '.join(coreml_targets())})")
        if precision not in ("fp16", "fp32"):
            raise BackendError(f"unknown Core ML precision {precision!r} (accepted: fp16, fp32)")
        x = torch.randn(*shape)
        with torch.no_grad():
            program = torch.export.export(module.eval(), (x,)).run_decompositions({})
        dtype = {"dtype": np.float32} if float32_io else {}
        outputs = [ct.TensorType(name=output_name, **dtype)] if output_name or float32_io else None
        return ct.convert(
            program,
            inputs=[ct.TensorType(name="input", shape=shape, **dtype)],
            outputs=outputs,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target[target],
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        )


__all__ = ["onnx_bytes", "coreml_model", "coreml_targets", "COREML_MIN_TARGET"]
