"""Measuring backends and the timing protocol.

Protocol (robust to this kind of machine's episodic 30-50% slowdowns): every module is prepared
once (exported, compiled, warmed up); then the modules are timed in several *passes*; within a pass
each module runs a chunk of back-to-back inferences (sized to ~``chunk_ms``) in a freshly shuffled
order, and the chunk's median is recorded. A module's latency is the median of its pass medians, and
its spread the interquartile range of those medians. A slowdown that lasts a few seconds hits every
module's one chunk in that pass, and the median over passes discards it.
"""

from __future__ import annotations

import io
import platform
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

Runner = Callable[[], object]


class BackendError(RuntimeError):
    """A backend that cannot run here (missing package, no GPU, not macOS)."""


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
        frozen = torch.jit.freeze(torch.jit.trace(module.eval(), x))

    def run() -> object:
        with torch.no_grad():
            return frozen(x)
    return run


def onnx_bytes(module: nn.Module, shape: tuple[int, ...], opset: int = 17) -> bytes:
    """The legacy (TorchScript-based) ONNX export, which ONNX Runtime runs fastest here."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation and traces shape math
        torch.onnx.export(module.eval(), (torch.randn(*shape),), buffer, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"])
    return buffer.getvalue()


def _onnxruntime_runner(module: nn.Module, shape: tuple[int, ...], threads: int) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendError("backend onnxruntime needs the onnxruntime package: pip install 'nas-mobile-vit[export]'") from None
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
        raise BackendError("backend coreml measures only on macOS (Core ML cannot predict on Linux); "
                           "use 'nas lut export-blocks --backend coreml' and measure on the device")
    try:
        import coremltools as ct
    except ImportError:
        raise BackendError("backend coreml needs coremltools: pip install 'nas-mobile-vit[export]'") from None
    x = torch.randn(*shape)
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), x)
    model = ct.convert(traced, inputs=[ct.TensorType(name="input", shape=shape)], convert_to="mlprogram",
                       compute_units=ct.ComputeUnit.ALL)
    feed = {"input": x.numpy()}

    def run() -> object:
        return model.predict(feed)
    return run


RUNNERS = {"torch": _torch_runner, "torchscript": _torchscript_runner, "onnxruntime": _onnxruntime_runner,
           "cuda": _cuda_runner, "coreml": _coreml_runner}


def make_runner(backend: str, module: nn.Module, shape: tuple[int, ...], threads: int = 1) -> Runner:
    """A zero-argument callable running one batch through `module` on `backend`."""
    if backend not in RUNNERS:
        raise BackendError(f"unknown backend {backend!r} (accepted: {', '.join(RUNNERS)})")
    if backend in ("torch", "torchscript"):
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
    return RUNNERS[backend](module, shape, threads)


@dataclass
class Timing:
    ms: float  # median of the pass medians
    spread_ms: float  # interquartile range of the pass medians
    passes: int
    iters: int  # inferences per pass

    def to_dict(self) -> dict:
        return {"ms": round(self.ms, 6), "spread_ms": round(self.spread_ms, 6), "passes": self.passes, "iters": self.iters}


def _chunk(run: Runner, iters: int) -> float:
    times = np.empty(iters)
    for i in range(iters):
        start = time.perf_counter()
        run()
        times[i] = time.perf_counter() - start
    return float(np.median(times)) * 1e3


def measure_interleaved(runners: dict[str, Runner], passes: int = 7, chunk_ms: float = 25.0, warmup_ms: float = 30.0,
                        seed: int = 0, on_pass: Callable[[int], None] | None = None) -> dict[str, Timing]:
    """Time every runner with the interleaved protocol of this module's docstring."""
    rng = random.Random(seed)
    iters: dict[str, int] = {}
    for key, run in runners.items():  # warm-up, and size each chunk from the warm-up speed
        start, count = time.perf_counter(), 0
        while count < 3 or (time.perf_counter() - start) * 1e3 < warmup_ms:
            run()
            count += 1
            if count >= 2000:
                break
        per_call = (time.perf_counter() - start) * 1e3 / count
        iters[key] = int(min(500, max(3, chunk_ms / max(per_call, 1e-4))))
    samples: dict[str, list[float]] = {key: [] for key in runners}
    order = list(runners)
    for p in range(passes):
        rng.shuffle(order)
        for key in order:
            samples[key].append(_chunk(runners[key], iters[key]))
        if on_pass:
            on_pass(p)
    out = {}
    for key, values in samples.items():
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        out[key] = Timing(float(med), float(q3 - q1), passes, iters[key])
    return out


def host_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def library_versions(backend: str) -> dict[str, str]:
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    if backend == "onnxruntime":
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    if backend == "coreml":
        try:
            import coremltools

            versions["coremltools"] = coremltools.__version__
        except ImportError:
            pass
    return versions
