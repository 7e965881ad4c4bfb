"""Measuring backends and the timing protocol.

Protocol (robust to this kind of machine's episodic 30-50% slowdowns): every module is prepared
once (exported, compiled, warmed up); then the modules are timed in several *passes*; within a pass
each module runs a chunk of back-to-back inferences (sized to ~``chunk_ms``) in a freshly shuffled
order, and the chunk's median is recorded. A module's latency is the median of its pass medians, and
its spread the interquartile range of those medians. A slowdown that lasts a few seconds hits every
module's one chunk in that pass, and the median over passes discards it.
"""

from __future__ import annotations

import contextlib
import io
import logging
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
        frozen = torch.jit.freeze(torch.jit.trace(module.eval(), x, check_trace=False))  # the check only re-runs it

    def run() -> object:
        with torch.no_grad():
            return frozen(x)
    return run


def onnx_bytes(module: nn.Module, shape: tuple[int, ...], opset: int = 17, *, output_name: str = "output",
               dynamic_batch: bool = False) -> bytes:
    """The legacy (TorchScript-based) ONNX export, which ONNX Runtime runs fastest here (input ``input``;
    a fixed batch unless `dynamic_batch`, which costs a few percent of speed)."""
    buffer = io.BytesIO()
    axes = {"input": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation and traces shape math
        torch.onnx.export(module.eval(), (torch.randn(*shape),), buffer, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=[output_name], dynamic_axes=axes)
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
    x = torch.randn(*shape)
    model = coreml_model(module, shape)
    feed = {"input": x.numpy()}

    def run() -> object:
        return model.predict(feed)
    return run


COREML_MIN_TARGET = "iOS15"  # ML programs need iOS 15 / macOS 12


def coreml_targets() -> list[str]:
    """The deployment targets an ML program can have (``iOS16``, ``macOS13``, ...)."""
    ct = _coremltools()
    floor = ct.target[COREML_MIN_TARGET]
    return [name for name, value in ct.target.__members__.items() if value >= floor]


def _coremltools():
    with _quiet_coremltools(progress=True):  # its import logs that it lacks the macOS runtime, and torch's version
        try:
            import coremltools
        except ImportError:
            raise BackendError("Core ML conversion needs coremltools: pip install 'nas-mobile-vit[export]'") from None
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


def coreml_model(module: nn.Module, shape: tuple[int, ...], *, precision: str = "fp16", target: str = "iOS16",
                 output_name: str | None = None, float32_io: bool = False, progress: bool = False):
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
        return ct.convert(program, inputs=[ct.TensorType(name="input", shape=shape, **dtype)], outputs=outputs,
                          convert_to="mlprogram", minimum_deployment_target=ct.target[target],
                          compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32)


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
