"""Measuring backends: a zero-argument runner that pushes one batch through a module on a backend.

Runners of the torch backends use the process's torch settings: time them inside
:func:`measuring` (one thread count, denormals flushed, both restored afterwards).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from search_spaces.provenance import require_extra
from supernet.runtime import torch_settings

from .convert import coreml_model, onnx_bytes
from .errors import BackendError
from .host import host_description

Runner = Callable[[], object]


def _torch_runner(module: nn.Module, shape: tuple[int, ...], threads: int, device: str = "cpu") -> Runner:
    module = module.eval().to(device)
    x = torch.randn(*shape, device=device)
    if device == "cuda":

        def run() -> object:
            with torch.inference_mode():
                out = module(x)
            torch.cuda.synchronize()
            return out

        return run

    def run() -> object:
        with torch.inference_mode():
            return module(x)

    return run


def _torchscript_runner(module: nn.Module, shape: tuple[int, ...], threads: int) -> Runner:
    x = torch.randn(*shape)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(module.eval(), x, check_trace=False))  # the check only re-runs it

    def run() -> object:
        with torch.no_grad():
            return frozen(x)

    return run


def _onnxruntime_runner(module: nn.Module, shape: tuple[int, ...], threads: int) -> Runner:
    require_extra("onnxruntime", "backend onnxruntime", "export", BackendError)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes(module, shape), options, providers=["CPUExecutionProvider"])
    feed = {"input": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}

    def run() -> object:
        return session.run(None, feed)

    return run


def _cuda_runner(module: nn.Module, shape: tuple[int, ...], threads: int) -> Runner:
    if not torch.cuda.is_available():
        raise BackendError("backend cuda needs a CUDA GPU; none is visible here")
    return _torch_runner(module, shape, threads, device="cuda")


def _coreml_runner(module: nn.Module, shape: tuple[int, ...], threads: int) -> Runner:
    if sys.platform != "darwin":
        raise BackendError(
            "backend coreml measures only on macOS (Core ML cannot predict on Linux); "
            "use 'nas lut export-blocks --backend coreml' and measure on the device"
        )
    x = torch.randn(*shape)
    model = coreml_model(module, shape)
    feed = {"input": x.numpy()}

    def run() -> object:
        return model.predict(feed)

    return run


RUNNERS = {
    "torch": _torch_runner,
    "torchscript": _torchscript_runner,
    "onnxruntime": _onnxruntime_runner,
    "cuda": _cuda_runner,
    "coreml": _coreml_runner,
}


def make_runner(backend: str, module: nn.Module, shape: tuple[int, ...], threads: int = 1) -> Runner:
    """A zero-argument callable running one batch through `module` on `backend` (see :func:`measuring`)."""
    if backend not in RUNNERS:
        raise BackendError(f"unknown backend {backend!r} (accepted: {', '.join(RUNNERS)})")
    return RUNNERS[backend](module, shape, threads)


@contextmanager
def measuring(threads: int) -> Iterator[None]:
    """The torch settings runners are prepared and timed under: `threads` intra-op threads and
    denormals flushed (ONNX Runtime sessions set their own), restored when the measurement ends."""
    with torch_settings(threads=threads, flush_denormal=True):
        yield


__all__ = ["BackendError", "Runner", "RUNNERS", "make_runner", "measuring", "host_description"]
