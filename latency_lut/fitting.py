"""A table for your own device from a few whole-model timings: choose models, time them, fit.

Measuring every layer key (762 in the default space) is the expensive way to a table: on a phone it
means 762 Core ML packages and as many measurements. The cost model of :mod:`latency_lut.costmodel`
needs only whole models: :func:`choose_models` picks N subnets that spread over the op mix (a greedy
D-optimal design for the relative fit, so that it is well-conditioned), :func:`export_models`
writes them with a manifest, and :func:`fit_table` turns their measured latencies into a table of
every layer key, with its cross-validated error. :func:`build_fitted` does all three on this machine.

Measurement files (milliseconds, median per model; the ids are the manifest's):

* JSON: ``{"models": {"<id>": 0.91, ...}}`` or a flat ``{"<id>": 0.91, ...}`` (a value may also be
  ``{"ms": 0.91}``);
* CSV with a header ``key,ms``: one row per model, the key its id (or ``model:<id>``).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import search_spaces
from search_spaces import Arch, Space
from search_spaces.files import atomic_write_dir, atomic_write_text, check_writable, read_json, read_text
from search_spaces.provenance import require_extra

from . import costmodel
from .build import Progress, add_seconds, backend_versions, measure_archs, reference_archs, reference_record
from .errors import LUTError
from .host import host_description
from .phone import milliseconds
from .table import LUT, SCHEMA, Calibration, table_meta

__all__ = ["build_fitted", "choose_models", "export_models", "fit_table", "read_model_measurements", "FORMATS"]

MANIFEST = "manifest.json"
#: What each backend's models are written as, and the file suffix.
FORMATS = {"coreml": ".mlpackage", "onnxruntime": ".onnx", "torchscript": ".pt", "torch": ".pt", "cuda": ".pt"}
#: Folds of the cross-validation a fitted table reports as its error.
CV_FOLDS = 5


def _design(feats: np.ndarray) -> np.ndarray:
    """The rows D-optimality sees: features divided by their pool mean, with an intercept column, each
    row divided by a prior guess of its latency (the row's mean: every feature an equal share of the
    average model's time). The fit's residuals are relative (``predicted / measured - 1``), so its
    Jacobian is the features over the latency; a design on the raw features favours the largest models
    (their rows are longest), which inform a relative fit no better and take longest to time."""
    mean = feats.mean(axis=0)
    used = mean > 0
    scaled = np.concatenate([feats[:, used] / mean[used], np.ones((len(feats), 1))], axis=1)
    return scaled / scaled.mean(axis=1, keepdims=True)


def choose_models(space: Space, n: int, *, pool: int = 2000, seed: int = 0) -> list[Arch]:
    """`n` distinct subnets of `space` chosen greedily from `pool` random ones (and the presets) to
    maximise the determinant of the information matrix of the relative fit (see :func:`_design`): each
    step adds the candidate with the largest prediction variance under the current design (the rank-one
    update of the determinant), so the chosen models span the op mix instead of clustering at its middle.

    Against the same greedy design on the raw features, on the default space (2,000 random subnets,
    latencies predicted by a fit to 40 ONNX Runtime timings on an AMD EPYC): for 20 models the mean
    relative prediction variance over the pool falls from 0.96 to 0.24, and the chosen models average
    26 ms instead of 47 (a random subnet 29 ms; timed in ``bench/bench_lut_fit.py``: 27 against 47)."""
    if n < 3:
        raise LUTError(f"choose at least 3 models to fit, got {n}")
    rng = random.Random(seed)
    candidates: dict[str, Arch] = {}
    for name in space.preset_names:
        arch = space.preset(name)
        candidates.setdefault(arch.id, arch)
    for _ in range(pool * 3):
        if len(candidates) >= pool + len(space.preset_names):
            break
        arch = space.sample(rng)
        candidates.setdefault(arch.id, arch)
    archs = list(candidates.values())
    if len(archs) < n:
        raise LUTError(f"space {space.name!r} offers only {len(archs)} distinct subnets, fewer than {n}")
    x = _design(np.array([costmodel.arch_features(a) for a in archs]))
    ridge = 1e-6 * np.eye(x.shape[1])
    chosen: list[int] = []
    info = ridge.copy()
    for _ in range(n):
        inverse = np.linalg.inv(info)
        variance = np.einsum("ij,jk,ik->i", x, inverse, x)
        variance[chosen] = -np.inf
        best = int(np.argmax(variance))
        chosen.append(best)
        info += np.outer(x[best], x[best])
    return [archs[i] for i in chosen]


def _write_model(arch: Arch, backend: str, target: Path, precision: str) -> None:
    import torch

    import supernet

    from .convert import coreml_model, onnx_bytes

    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = supernet.SubNet(arch).eval()
    shape = (1, 3, arch.resolution, arch.resolution)
    if backend == "coreml":
        package = coreml_model(module, shape, precision=precision)
        atomic_write_dir(target, lambda tmp: package.save(str(tmp)))
    elif backend == "onnxruntime":
        data = onnx_bytes(module, shape)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    else:
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(module, torch.zeros(shape)))
        tmp = target.with_name(target.name + ".tmp")
        traced.save(str(tmp))
        tmp.replace(target)


def export_models(
    space: Space | str,
    backend: str,
    n: int,
    out_dir: str | Path,
    *,
    seed: int = 0,
    precision: str = "fp16",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write `n` chosen subnets for `backend` (Core ML packages, ONNX graphs or TorchScript files) and a
    manifest listing each model's id, architecture, file, input shape and features. Files already
    there (an interrupted export) are kept."""
    if backend not in FORMATS:
        raise LUTError(f"unknown backend {backend!r} (accepted: {', '.join(FORMATS)})")
    if backend == "coreml":
        require_extra("coremltools", "export-models --backend coreml", "export", LUTError)
    elif backend == "onnxruntime":
        require_extra("onnx", "export-models --backend onnxruntime", "export", LUTError)
    space = search_spaces.load(space) if isinstance(space, str) else space
    out = check_writable(out_dir, "models", directory=True)
    if out.exists() and not out.is_dir():
        raise LUTError(f"cannot write models to {out}: it is a file, not a directory")
    archs = choose_models(space, n, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": "fit-models",
        "space": space.ref,
        "space_name": space.name,
        "backend": backend,
        "precision": precision if backend == "coreml" else "fp32",
        "batch": 1,
        "date": _dt.date.today().isoformat(),
        "features": list(costmodel.FEATURES),
        "how_to_measure": "Time each model's median latency (ms, batch 1) on the device; write "
        '{"models": {id: ms}} or a CSV key,ms and run \'nas lut fit --device NAME --measurements FILE --manifest '
        "manifest.json'.",
        "models": [],
    }
    for done, arch in enumerate(archs, 1):
        file_name = f"model_{arch.id}{FORMATS[backend]}"
        target = out / file_name
        if not target.exists():
            _write_model(arch, backend, target, precision)
        manifest["models"].append(
            {
                "id": arch.id,
                "arch": arch.to_dict(),
                "file": file_name,
                "input_shape": [1, 3, arch.resolution, arch.resolution],
                "features": [round(float(v), 9) for v in costmodel.arch_features(arch)],
            }
        )
        if progress:
            progress(done, len(archs), "exporting")
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_model_measurements(path: str | Path) -> dict[str, float]:
    """Model id -> ms from a measurement file (formats in this module's docstring); LUTError naming the
    entry for anything that is not a positive finite number or is measured twice."""
    path = Path(path)
    text = read_text(path, "measurement file", LUTError)
    out: dict[str, float] = {}
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows or [c.strip().lower() for c in rows[0][:2]] != ["key", "ms"]:
            raise LUTError(f"{path} line 1: expected the header 'key,ms'")
        for line, row in enumerate(rows[1:], 2):
            if not row or not "".join(row).strip():
                continue
            ident = row[0].strip().removeprefix("model:")
            if ident in out:
                raise LUTError(f"{path} line {line}: model {ident!r} is measured twice; keep one")
            out[ident] = milliseconds(row[1] if len(row) > 1 else None, f"{path} line {line} (model {ident})", positive=True)
        return out
    data = read_json(path, "measurement file", LUTError)
    if isinstance(data, dict) and "models" in data:
        data = data["models"]
    if not isinstance(data, dict):
        raise LUTError(f'{path}: expected a JSON object of model id -> ms (or {{"models": {{...}}}})')
    for ident, value in data.items():
        out[str(ident)] = milliseconds(value, f"{path}: model {ident}", positive=True)
    return out


def _manifest(path: str | Path) -> tuple[dict[str, Any], dict[str, Arch]]:
    data = read_json(path, "manifest", LUTError)
    if not isinstance(data, dict) or data.get("kind") != "fit-models" or not isinstance(data.get("models"), list):
        raise LUTError(f"{path}: not a manifest of 'nas lut export-models'")
    archs = {}
    for i, model in enumerate(data["models"]):
        if not isinstance(model, dict) or not isinstance(model.get("id"), str) or "arch" not in model:
            raise LUTError(f"{path}: models[{i}] is not an entry with an 'id' and an 'arch'")
        archs[model["id"]] = Arch.from_dict(model["arch"], source=f"{path} models[{i}]")
    return data, archs


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[costmodel.CostModel, dict[str, Any]]:
    """Every feature fitted (the bounds keep a coefficient the models barely exercise in range), the
    fit on every model, and its cross-validated error. Nothing is chosen by that error, so it is not
    optimistic; choosing a subset by it did worse on held-out subnets (``bench/bench_lut_fit.py``, ONNX
    Runtime here, 50 held-out subnets, two runs: from 20 models 88% / 88% within +-10% chosen, 96% / 92% with
    every feature)."""
    groups = [str(i % CV_FOLDS) for i in range(len(y))]
    metrics = costmodel.leave_group_out(x, y, groups)["metrics"]
    error = {"how": f"{CV_FOLDS}-fold cross-validation over the measured models", **metrics}
    return costmodel.fit_cost_model(x, y), error


def _write_table(
    space: Space,
    device: str,
    backend: str,
    threads: int,
    archs: Sequence[Arch],
    measured: Sequence[float],
    out: str | Path,
    provenance_extra: dict[str, Any],
    versions_record: dict[str, str],
) -> LUT:
    x = np.array([costmodel.arch_features(a) for a in archs])
    y = np.asarray(measured, dtype=float)
    model, error = _fit(x, y)
    specs = space.all_layers()
    feats = costmodel.specs_features(specs)
    entries = {
        spec.key: {"ms": round(float(v), 6), "spread_ms": 0.0, "features": [round(float(f), 9) for f in row]}
        for spec, row, v in zip(specs, feats, model.layer_ms(feats))
    }
    predicted = model.predict(x)
    # what the fit freed: a feature no model of the space has (the sigmoid family here) stays pinned at zero
    fitted = [name for name in model.details["free"] if name != "fixed_ms"]
    provenance = {
        "kind": "fitted",
        "method": f"the op-aware cost model fitted to {len(y)} whole-model timings (every feature the space's "
        f"models have: {', '.join(fitted)}); every layer key's entry is its features times the fitted coefficients",
        **provenance_extra,
        "features": list(costmodel.FEATURES),
        "fitted_features": fitted,
        "cost_model": model.to_dict(),
        "error": error,
        "in_sample": costmodel.rank_metrics(predicted, y),
        "points": [
            {"id": a.id, "arch": a.to_dict(), "measured_ms": float(m), "fitted_ms": round(float(p), 4)}
            for a, m, p in zip(archs, y, predicted)
        ],
    }
    meta = table_meta(device, backend, threads, space, provenance, versions_record)
    calibration = Calibration(
        offset_ms=round(model.fixed_ms, 6),
        fitted_on=len(y),
        details={"note": "offset_ms is the cost model's fitted per-inference constant, fitted with its coefficients"},
    )
    lut = LUT(meta, entries, calibration)
    lut.save(out)
    return lut


def fit_table(measurements: str | Path, manifest: str | Path, device: str, out: str | Path, *, host: str = "") -> LUT:
    """A table of every layer key of the manifest's space, fitted to the measured whole models. Nothing
    is written unless every model of the manifest has one valid measurement and nothing else is in the file."""
    out = check_writable(out, "table")
    data, archs = _manifest(manifest)
    measured = read_model_measurements(measurements)
    unknown = [ident for ident in measured if ident not in archs]
    if unknown:
        raise LUTError(f"{measurements}: model {unknown[0]!r} is not in the manifest {manifest}")
    missing = [ident for ident in archs if ident not in measured]
    if missing:
        raise LUTError(f"{measurements}: no measurement for model {missing[0]!r} ({len(missing)} of {len(archs)} missing)")
    space = next(iter(archs.values())).search_space
    extra = {
        "host": host or f"measured on the device from the models of {manifest}",
        "imported_from": str(measurements),
        "precision": data.get("precision"),
    }
    return _write_table(
        space, device, data.get("backend", "coreml"), 0, list(archs.values()), [measured[i] for i in archs], out, extra, {}
    )


def build_fitted(
    space: Space | str,
    device: str,
    backend: str,
    out: str | Path,
    *,
    n: int = 20,
    threads: int = 1,
    passes: int = 7,
    seed: int = 0,
    progress: Progress | None = None,
) -> LUT:
    """Time `n` chosen whole models here with `backend` (interleaved) and write the fitted table."""
    space = search_spaces.load(space) if isinstance(space, str) else space
    out = check_writable(out, "table")
    archs = choose_models(space, n, seed=seed)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    references = reference_archs(space)
    measured = measure_archs(archs, backend, threads, passes, seed, progress, seconds, references)
    extra = {
        "reference": reference_record(
            references,
            seconds["reference_ms"],
            "every timing is its ratio to the geometric mean of these models, timed in the same passes, times this latency",
        ),
        "host": host_description(),
        "protocol": f"{n} whole models chosen by D-optimal design, interleaved passes={passes}, median of passes",
        "measuring_s": round(time.perf_counter() - started, 1),
    }
    add_seconds(extra, seconds)
    return _write_table(space, device, backend, threads, archs, measured, out, extra, backend_versions(backend))
