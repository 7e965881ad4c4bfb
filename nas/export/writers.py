"""Writing found architectures out: the architecture file, or the standalone model as PyTorch,
TorchScript, ONNX or Core ML, each carrying its architecture and metrics.

The model is always the plain ``supernet.SubNet`` of the architecture (no masks, no slicing), with the
supernet's weights when one is given. Every write goes to a temporary path beside the target and
replaces it only when complete, so an interrupted or failed export leaves the old file as it was.
ONNX and TorchScript models are run against PyTorch before anything is written.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import latency_lut
import supernet
from latency_lut.convert import coreml_model, coreml_targets, onnx_bytes
from search_spaces import Arch
from search_spaces.files import atomic_write, atomic_write_dir, check_writable
from search_spaces.provenance import require_extra, tool_version

from ..errors import BadInput, NasError
from ..evaluate import evaluate

FORMATS = ("yaml", "pt", "torchscript", "onnx", "coreml")
MODEL_FORMATS = FORMATS[1:]
ONNX_OPSET = 17
TOLERANCE = 1e-4  # largest |ONNX Runtime - PyTorch| (and TorchScript) output difference accepted
DEFAULT_PRECISION = "fp16"
DEFAULT_TARGET = "iOS16"
OUTPUT_NAME = "logits"
TORCHSCRIPT_METADATA = "nas.json"  # torch.jit.load(path, _extra_files={"nas.json": ""})
RANDOM_WEIGHTS = "random initialisation (untrained; pass --supernet CKPT for trained weights)"


class ExportCheckFailed(NasError):
    """An exported model whose outputs differ from PyTorch's; nothing was written (exit code 1)."""


def metadata(arch: Arch, entry: Mapping[str, Any] | None = None, weights: str = RANDOM_WEIGHTS) -> dict[str, str]:
    """What a model file says about itself: the architecture (JSON, also valid YAML), its exact params and
    MACs, latency and MES on the default device, and, for a search run's entry, its id and accuracy."""
    counts = supernet.count(arch)
    meta = {
        "arch": json.dumps(arch.to_dict(), separators=(",", ":")),
        "arch_id": arch.id,
        "input": f"input: float32 [N, 3, {arch.resolution}, {arch.resolution}]",
        "output": f"{OUTPUT_NAME}: class scores",
        "params": str(counts.params),
        "macs": str(counts.macs),
    }
    try:
        lut = latency_lut.load(None)
        metrics = evaluate(arch, lut=lut)
        meta.update(
            latency_ms=f"{metrics['latency_ms']:.4f}",
            latency_device=lut.device,
            latency_provenance=lut.provenance,
            mes=f"{metrics['mes']:.2f}",
        )
    except latency_lut.LUTError:  # the default table does not cover this space: no latency to state
        pass
    if entry is not None:
        meta["source"] = str(entry.get("id", ""))
        if entry.get("accuracy") is not None:
            meta.update(accuracy=f"{entry['accuracy']:.4g}", accuracy_source=str(entry.get("accuracy_source") or ""))
        device = entry.get("device")
        if device and device != meta.get("latency_device") and entry.get("latency_ms") is not None:
            meta.update(run_device=str(device), run_latency_ms=f"{entry['latency_ms']:.4f}")
    meta["weights"] = weights
    meta["producer"] = f"nas-mobile-vit {tool_version()}"
    return meta


def check_request(
    fmt: str,
    out: str | Path,
    *,
    state_dict: bool = False,
    precision: str | None = None,
    target: str | None = None,
    dynamic_batch: bool = False,
    with_weights: bool = False,
) -> Path:
    """Refuse a request that cannot succeed before any work is done (exit 2): unknown format, options of
    another format, an unwritable output path. Returns the output path."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown export format {fmt!r} (accepted: {', '.join(FORMATS)})")
    for given, option, formats in (
        (state_dict, "--state-dict", ("pt",)),
        (precision is not None, "--precision", ("coreml",)),
        (target is not None, "--target", ("coreml",)),
        (dynamic_batch, "--dynamic-batch", ("onnx",)),
        (with_weights, "--supernet", MODEL_FORMATS),
    ):
        if given and fmt not in formats:
            raise BadInput(f"{option} applies to --format {' or '.join(formats)}, not {fmt}")
    for module in {"onnx": ("onnx", "onnxruntime"), "coreml": ("coremltools",)}.get(fmt, ()):
        require_extra(module, f"--format {fmt}", "export", BadInput)
    if precision is not None and precision not in ("fp16", "fp32"):
        raise BadInput(f"unknown --precision {precision!r} (accepted: fp16, fp32)")
    if target is not None:
        if target not in coreml_targets():
            raise BadInput(f"unknown --target {target!r} (accepted: {', '.join(coreml_targets())})")
    out = Path(out)
    if fmt == "coreml":
        if out.suffix != ".mlpackage":
            raise BadInput(f"cannot write {out}: a Core ML package's name ends in .mlpackage")
        if out.exists() and not (out / "Manifest.json").is_file():
            raise BadInput(f"cannot write {out}: it exists and is not a Core ML package (not replacing it)")
        return check_writable(out, directory=True)
    return check_writable(out)


def export(
    arch: Arch,
    fmt: str,
    out: str | Path,
    *,
    model: Any = None,
    entry: Mapping[str, Any] | None = None,
    weights: str | None = None,
    state_dict: bool = False,
    precision: str | None = None,
    target: str | None = None,
    dynamic_batch: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write `arch` as `fmt` to `out`; return what was written (path, format, bytes, params, metadata, ...).

    `model` is the module to write (default: ``supernet.SubNet(arch)``, freshly initialised with seed 0);
    `weights` says where its weights come from (kept in the file's metadata); `entry` is the search run's
    entry the architecture comes from. `state_dict` writes only the weights (``pt``); `precision` and
    `target` set the Core ML compute precision and deployment target; `dynamic_batch` gives the ONNX
    model a free batch dimension; `progress` lets coremltools draw its progress bars on stderr.
    """
    out = check_request(fmt, out, state_dict=state_dict, precision=precision, target=target, dynamic_batch=dynamic_batch)
    start = time.perf_counter()
    info: dict[str, Any] = {"path": str(out), "format": fmt}
    if fmt == "yaml":
        arch.save(out)
        info["params"] = supernet.count(arch).params
    else:
        if model is None:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = supernet.SubNet(arch)
            weights = weights or RANDOM_WEIGHTS
        else:
            model = copy.deepcopy(model)  # moved to the CPU and set to eval without touching the caller's
        meta = metadata(arch, entry, weights or "the module given to nas.export.export")
        if fmt == "coreml" or (fmt == "onnx" and not dynamic_batch):
            meta["input"] = meta["input"].replace("[N,", "[1,")
        model = model.cpu().eval()
        info.update(
            _WRITERS[fmt](
                model,
                arch,
                out,
                meta,
                state_dict=state_dict,
                precision=precision or DEFAULT_PRECISION,
                target=target or DEFAULT_TARGET,
                dynamic_batch=dynamic_batch,
                progress=progress,
            )
        )
        info["params"] = sum(p.numel() for p in model.parameters())
        info["weights"] = meta["weights"]
        info["metadata"] = meta
    info.update(bytes=_size(out), arch_id=arch.id, seconds=round(time.perf_counter() - start, 3))
    if entry is not None:
        info["source"] = entry.get("id")
    return info


# ---- writers -------------------------------------------------------------------------------------
def _sample(arch: Arch, batch: int = 1):
    return torch.randn(batch, 3, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(0))


def _max_diff(got: Any, want: Any, what: str) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise ExportCheckFailed(f"the {what} model's output has shape {got.shape}, PyTorch's {want.shape}; nothing written")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not diff <= TOLERANCE:  # also catches NaN
        raise ExportCheckFailed(
            f"the {what} model's outputs differ from PyTorch's by up to {diff:.3g} (tolerance {TOLERANCE:g}); nothing written"
        )
    return diff


def _write_pt(model: Any, arch: Arch, out: Path, meta: dict[str, str], *, state_dict: bool, **_: Any) -> dict[str, Any]:
    atomic_write(out, lambda tmp: torch.save(model.state_dict() if state_dict else model, tmp))
    return {"state_dict": state_dict}


def _write_torchscript(model: Any, arch: Arch, out: Path, meta: dict[str, str], **_: Any) -> dict[str, Any]:
    x = _sample(arch)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic (one resolution by design); jit's deprecation
        frozen = torch.jit.freeze(torch.jit.trace(model, x, check_trace=False))  # checked below, once
        diff = _max_diff(frozen(x).numpy(), model(x).numpy(), "TorchScript")
        atomic_write(out, lambda tmp: torch.jit.save(frozen, str(tmp), _extra_files={TORCHSCRIPT_METADATA: json.dumps(meta)}))
    return {"max_abs_diff": diff}


def _write_onnx(model: Any, arch: Arch, out: Path, meta: dict[str, str], *, dynamic_batch: bool, **_: Any) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    proto = onnx.load_from_string(
        onnx_bytes(model, tuple(_sample(arch).shape), ONNX_OPSET, output_name=OUTPUT_NAME, dynamic_batch=dynamic_batch)
    )
    proto.doc_string = f"EfficientFormerV2-style subnet {arch.id} exported by nas"
    for key, value in meta.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    x = _sample(arch, batch=2 if dynamic_batch else 1)
    with torch.no_grad():
        want = model(x).numpy()
    diff = _max_diff(session.run(None, {"input": x.numpy()})[0], want, "ONNX Runtime")
    atomic_write(out, lambda tmp: tmp.write_bytes(data))
    return {"max_abs_diff": diff, "opset": ONNX_OPSET, "dynamic_batch": dynamic_batch}


def _write_coreml(
    model: Any, arch: Arch, out: Path, meta: dict[str, str], *, precision: str, target: str, progress: bool, **_: Any
) -> dict[str, Any]:
    mlmodel = coreml_model(
        model,
        tuple(_sample(arch).shape),
        precision=precision,
        target=target,
        output_name=OUTPUT_NAME,
        float32_io=True,
        progress=progress,
    )
    mlmodel.user_defined_metadata.update(meta)
    mlmodel.short_description = f"EfficientFormerV2-style subnet {arch.id} ({int(meta['params']):,} parameters)"
    mlmodel.input_description["input"] = f"float32 image batch [1, 3, {arch.resolution}, {arch.resolution}]"
    mlmodel.output_description[OUTPUT_NAME] = "class scores"
    atomic_write_dir(out, lambda tmp: mlmodel.save(str(tmp)))
    return {"precision": precision, "target": target}


_WRITERS: dict[str, Callable[..., dict[str, Any]]] = {
    "pt": _write_pt,
    "torchscript": _write_torchscript,
    "onnx": _write_onnx,
    "coreml": _write_coreml,
}


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
