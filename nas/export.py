"""Writing found architectures out (SPEC section 8): the architecture file, or the standalone model as
PyTorch, TorchScript, ONNX or Core ML, each carrying its architecture and metrics.

The model is always the plain ``supernet.SubNet`` of the architecture (no masks, no slicing), with the
supernet's weights when one is given. Every write goes to a temporary path beside the target and
replaces it only when complete, so an interrupted or failed export leaves the old file as it was.
ONNX and TorchScript models are run against PyTorch before anything is written.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from search_spaces import Arch, Space, SpaceError

from .errors import BadInput, NasError

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


def load_supernet_weights(ckpt: str | Path, space: Space | str) -> Any:
    """The supernet of `space` holding a checkpoint's weights: a file with the supernet's state_dict, or
    a dict whose ``"model"`` is one (as a training checkpoint keeps it beside optimizer state)."""
    import torch

    import supernet

    path = Path(ckpt)
    if not path.is_file():
        raise BadInput(f"--supernet {ckpt}: no such file")
    try:
        # weights_only and never a fallback: a full unpickling runs whatever code the file names
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise BadInput(f"--supernet {ckpt}: holds Python objects other than tensors and plain data, which nas does not "
                       "unpickle (it could run code); save the state_dict alone: torch.save(net.state_dict(), path)") from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a file that is not a checkpoint
        raise BadInput(f"--supernet {ckpt}: not a readable torch checkpoint ({str(exc).splitlines()[0][:200]})") from None
    state = data["model"] if isinstance(data, Mapping) and "model" in data else data
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadInput(f"--supernet {ckpt}: expected a supernet state_dict, or a dict with one under 'model'")
    net = supernet.build(space)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [f"{k} is {tuple(state[k].shape)}, the space needs {tuple(v.shape)}"
               for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or resized:
        problems = [f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else "",
                    f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                    resized[0] if resized else ""]
        raise BadInput(f"--supernet {ckpt}: not a supernet of space {net.space.name!r}: "
                       f"{'; '.join(p for p in problems if p)} (trained on another space? see --space)")
    net.load_state_dict(state)
    return net.eval()


def trained_model(arch: Arch, ckpt: str | Path, space: Space | str | None = None) -> tuple[Arch, Any]:
    """`arch` with trained weights: from a ``nas train`` checkpoint (a supernet's subnet, the same genes in
    the checkpoint's space, i.e. its classes and resolution; or the one architecture it trained), else
    from a bare supernet state_dict of `space` (default: `arch`'s). Returns the architecture the weights
    fit and the standalone module."""
    import torch

    from .train import FORMAT, load_checkpoint

    try:
        head = torch.load(Path(ckpt), map_location="cpu", weights_only=True, mmap=True)
        is_training_checkpoint = isinstance(head, Mapping) and head.get("format") == FORMAT
    except Exception:  # noqa: BLE001 - not a weights-only file: load_supernet_weights explains
        is_training_checkpoint = False
    if not is_training_checkpoint:
        return arch, load_supernet_weights(ckpt, space or arch.search_space).extract(arch)
    checkpoint = load_checkpoint(ckpt)
    try:
        adapted = checkpoint.adapt(arch)
    except SpaceError as exc:
        raise BadInput(f"--supernet {ckpt}: trained on {checkpoint.space.name!r}, which cannot run this architecture "
                       f"({str(exc).splitlines()[0]})") from None
    if checkpoint.kind == "supernet":
        return adapted, checkpoint.model().extract(adapted)
    if checkpoint.arch is None or checkpoint.adapt(checkpoint.arch).id != adapted.id:
        raise BadInput(f"--supernet {ckpt}: holds one trained architecture ({checkpoint.arch.id if checkpoint.arch else '?'}), "
                       f"not {arch.id}")
    return checkpoint.arch, checkpoint.model()


def metadata(arch: Arch, entry: Mapping[str, Any] | None = None, weights: str = RANDOM_WEIGHTS) -> dict[str, str]:
    """What a model file says about itself: the architecture (JSON, also valid YAML), its exact params and
    MACs, latency and MES on the default device, and, for a search run's entry, its id and accuracy."""
    import latency_lut
    import supernet

    from .evaluate import evaluate

    counts = supernet.count(arch)
    meta = {"arch": json.dumps(arch.to_dict(), separators=(",", ":")), "arch_id": arch.id,
            "input": f"input: float32 [N, 3, {arch.resolution}, {arch.resolution}]", "output": f"{OUTPUT_NAME}: class scores",
            "params": str(counts.params), "macs": str(counts.macs)}
    try:
        lut = latency_lut.load(None)
        metrics = evaluate(arch, lut=lut)
        meta.update(latency_ms=f"{metrics['latency_ms']:.4f}", latency_device=lut.device,
                    latency_provenance=lut.provenance, mes=f"{metrics['mes']:.2f}")
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
    meta["producer"] = f"nas-mobile-vit {_version()}"
    return meta


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nas-mobile-vit")
    except Exception:  # noqa: BLE001 - an uninstalled checkout
        return "unknown"


def check_request(fmt: str, out: str | Path, *, state_dict: bool = False, precision: str | None = None,
                  target: str | None = None, dynamic_batch: bool = False, with_weights: bool = False) -> Path:
    """Refuse a request that cannot succeed before any work is done (exit 2): unknown format, options of
    another format, an unwritable output path. Returns the output path."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown export format {fmt!r} (accepted: {', '.join(FORMATS)})")
    for given, option, formats in ((state_dict, "--state-dict", ("pt",)), (precision is not None, "--precision", ("coreml",)),
                                   (target is not None, "--target", ("coreml",)),
                                   (dynamic_batch, "--dynamic-batch", ("onnx",)), (with_weights, "--supernet", MODEL_FORMATS)):
        if given and fmt not in formats:
            raise BadInput(f"{option} applies to --format {' or '.join(formats)}, not {fmt}")
    if precision is not None and precision not in ("fp16", "fp32"):
        raise BadInput(f"unknown --precision {precision!r} (accepted: fp16, fp32)")
    if target is not None:
        from latency_lut.backends import coreml_targets

        if target not in coreml_targets():
            raise BadInput(f"unknown --target {target!r} (accepted: {', '.join(coreml_targets())})")
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"cannot write {out}: directory {parent} does not exist")
    if fmt == "coreml":
        if out.suffix != ".mlpackage":
            raise BadInput(f"cannot write {out}: a Core ML package's name ends in .mlpackage")
        if out.exists() and not (out / "Manifest.json").is_file():
            raise BadInput(f"cannot write {out}: it exists and is not a Core ML package (not replacing it)")
    elif out.is_dir():
        raise BadInput(f"cannot write {out}: it is a directory")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise BadInput(f"cannot write {out}: permission denied")
    return out


def export(arch: Arch, fmt: str, out: str | Path, *, model: Any = None, entry: Mapping[str, Any] | None = None,
           weights: str | None = None, state_dict: bool = False, precision: str | None = None, target: str | None = None,
           dynamic_batch: bool = False, progress: bool = False) -> dict[str, Any]:
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
        import supernet

        _write_file(out, arch.save)
        info["params"] = supernet.count(arch).params
    else:
        import torch

        import supernet

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
        info.update(_WRITERS[fmt](model, arch, out, meta, state_dict=state_dict, precision=precision or DEFAULT_PRECISION,
                                  target=target or DEFAULT_TARGET, dynamic_batch=dynamic_batch, progress=progress))
        info["params"] = sum(p.numel() for p in model.parameters())
        info["weights"] = meta["weights"]
        info["metadata"] = meta
    info.update(bytes=_size(out), arch_id=arch.id, seconds=round(time.perf_counter() - start, 3))
    if entry is not None:
        info["source"] = entry.get("id")
    return info


# ---- writers -------------------------------------------------------------------------------------
def _sample(arch: Arch, batch: int = 1):
    import torch

    return torch.randn(batch, 3, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(0))


def _max_diff(got: Any, want: Any, what: str) -> float:
    import numpy as np

    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise ExportCheckFailed(f"the {what} model's output has shape {got.shape}, PyTorch's {want.shape}; nothing written")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not diff <= TOLERANCE:  # also catches NaN
        raise ExportCheckFailed(f"the {what} model's outputs differ from PyTorch's by up to {diff:.3g} "
                                f"(tolerance {TOLERANCE:g}); nothing written")
    return diff


def _write_pt(model: Any, arch: Arch, out: Path, meta: dict[str, str], *, state_dict: bool, **_: Any) -> dict[str, Any]:
    import torch

    _write_file(out, lambda tmp: torch.save(model.state_dict() if state_dict else model, tmp))
    return {"state_dict": state_dict}


def _write_torchscript(model: Any, arch: Arch, out: Path, meta: dict[str, str], **_: Any) -> dict[str, Any]:
    import torch

    x = _sample(arch)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic (one resolution by design); jit's deprecation
        frozen = torch.jit.freeze(torch.jit.trace(model, x, check_trace=False))  # checked below, once
        diff = _max_diff(frozen(x).numpy(), model(x).numpy(), "TorchScript")
        _write_file(out, lambda tmp: torch.jit.save(frozen, str(tmp), _extra_files={TORCHSCRIPT_METADATA: json.dumps(meta)}))
    return {"max_abs_diff": diff}


def _write_onnx(model: Any, arch: Arch, out: Path, meta: dict[str, str], *, dynamic_batch: bool, **_: Any) -> dict[str, Any]:
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise BadInput("--format onnx needs onnx and onnxruntime: pip install 'nas-mobile-vit[export]'") from None
    import torch

    from latency_lut.backends import onnx_bytes

    proto = onnx.load_from_string(onnx_bytes(model, tuple(_sample(arch).shape), ONNX_OPSET, output_name=OUTPUT_NAME,
                                             dynamic_batch=dynamic_batch))
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
    _write_file(out, lambda tmp: tmp.write_bytes(data))
    return {"max_abs_diff": diff, "opset": ONNX_OPSET, "dynamic_batch": dynamic_batch}


def _write_coreml(model: Any, arch: Arch, out: Path, meta: dict[str, str], *, precision: str, target: str,
                  progress: bool, **_: Any) -> dict[str, Any]:
    from latency_lut.backends import coreml_model

    mlmodel = coreml_model(model, tuple(_sample(arch).shape), precision=precision, target=target, output_name=OUTPUT_NAME,
                           float32_io=True, progress=progress)
    mlmodel.user_defined_metadata.update(meta)
    mlmodel.short_description = f"EfficientFormerV2-style subnet {arch.id} ({int(meta['params']):,} parameters)"
    mlmodel.input_description["input"] = f"float32 image batch [1, 3, {arch.resolution}, {arch.resolution}]"
    mlmodel.output_description[OUTPUT_NAME] = "class scores"
    _write_package(out, lambda tmp: mlmodel.save(str(tmp)))
    return {"precision": precision, "target": target}


_WRITERS: dict[str, Callable[..., dict[str, Any]]] = {"pt": _write_pt, "torchscript": _write_torchscript,
                                                       "onnx": _write_onnx, "coreml": _write_coreml}


# ---- atomic writes -------------------------------------------------------------------------------
def _write_file(out: Path, write: Callable[[Path], Any]) -> None:
    """`write` to a temporary file beside `out`, then replace `out` with it."""
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")  # same suffix: Arch.save picks JSON by it
    try:
        write(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_package(out: Path, write: Callable[[Path], Any]) -> None:
    """`write` a package directory beside `out`, then swap it in; the old package is removed only after
    the new one is in place (coremltools wants the .mlpackage suffix on the temporary name too)."""
    tmp = out.with_name(f".{out.stem}.partial.mlpackage")
    old = out.with_name(f".{out.stem}.old.mlpackage")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            if old.exists() and not out.exists():
                os.replace(old, out)  # put the previous package back
            raise
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
