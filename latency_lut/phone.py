"""Measuring a phone: per-layer Core ML packages out, measured latencies back in.

``export_blocks`` writes one ``.mlpackage`` per layer key of a space (and a few whole models for the
end-to-end calibration) plus ``manifest.json``. Measure them on the device (for example with Xcode's
Core ML performance report) and write the results in either format below; ``import_measurements``
turns them into a latency table.

Measurement file formats (milliseconds, median per model):

* JSON: ``{"blocks": {"<key>": 0.123, ...}, "models": {"<model id>": 0.91, ...}}`` (``models`` optional;
  a value may also be ``{"ms": 0.123, "spread_ms": 0.004}``), or a flat ``{"<key>": 0.123, ...}``.
* CSV with a header: ``key,ms[,spread_ms]``; model rows use ``model:<model id>`` as the key.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

import search_spaces
import supernet
from search_spaces import DEFAULT_SPACE, Space
from search_spaces.files import atomic_write_dir, atomic_write_text, check_writable, read_json, read_text
from search_spaces.provenance import require_extra

from .build import Progress, calibration_archs
from .convert import coreml_model
from .errors import LUTError
from .table import LUT, SCHEMA, Calibration, table_meta

MANIFEST = "manifest.json"


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".mlpackage"


def export_blocks(
    space: Space | str,
    out_dir: str | Path,
    *,
    precision: str = "fp16",
    calibration_models: int = 8,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write a Core ML package per layer key (and whole calibration models) with a manifest.

    Packages already present (from an interrupted export) are kept, not converted again.
    """
    require_extra("coremltools", "export-blocks", "export", LUTError)

    if precision not in ("fp16", "fp32"):
        raise LUTError(f"unknown precision {precision!r} (accepted: fp16, fp32)")
    space = search_spaces.load(space) if isinstance(space, str) else space
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = space.all_layers()[:limit] if limit is not None else space.all_layers()
    archs = calibration_archs(space, calibration_models, seed) if calibration_models else []
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "space": space.ref,
        "space_name": space.name,
        "resolutions": list(space.resolutions),
        "precision": precision,
        "target": "iOS16",
        "batch": 1,
        "date": _dt.date.today().isoformat(),
        "how_to_measure": "Measure each package's median prediction latency (ms) on the device; write "
        '{"blocks": {key: ms}, "models": {id: ms}} and run \'nas lut import FILE --device NAME\'.',
        "blocks": [],
        "models": [],
    }
    jobs = [("block", spec.key, spec, _file_name(spec.key), (1, spec.cin, spec.grid, spec.grid)) for spec in specs]
    jobs += [("model", arch.id, arch, f"model_{arch.id}.mlpackage", (1, 3, arch.resolution, arch.resolution)) for arch in archs]
    for done, (kind, ident, item, file_name, shape) in enumerate(jobs, 1):
        target = out / file_name
        if not target.exists():
            module = supernet.SubNet(item) if kind == "model" else supernet.build_layer(item)
            package = coreml_model(module, shape, precision=precision)
            atomic_write_dir(target, lambda tmp, package=package: package.save(str(tmp)))
        record = {"file": file_name, "input_shape": list(shape)}
        if kind == "block":
            manifest["blocks"].append({"key": ident, "kind": item.kind, **record})
        else:
            manifest["models"].append({"id": ident, "arch": item.to_dict(), **record})
        if progress:
            progress(done, len(jobs), "converting")
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def milliseconds(value: Any, where: str, *, positive: bool = False) -> float:
    """A measured value (a number, or ``{"ms": number}``) as milliseconds; LUTError naming `where` for
    anything that is not a finite number >= 0 (> 0 with `positive`: a whole model cannot take no time)."""
    if isinstance(value, dict):
        value = value.get("ms")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LUTError(f"{where}: expected a number of milliseconds, got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "positive, finite" if positive else "non-negative"
        raise LUTError(f"{where}: expected a {kind} number of milliseconds, got {value!r}")
    return number


def read_measurements(path: str | Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Parse a measurement file (format in this module's docstring) into (blocks, models)."""
    path = Path(path)
    text = read_text(path, "measurement file", LUTError)
    blocks: dict[str, dict[str, float]] = {}
    models: dict[str, float] = {}
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows or [c.strip().lower() for c in rows[0][:2]] != ["key", "ms"]:
            raise LUTError(f"{path} line 1: expected the header 'key,ms[,spread_ms]'")
        seen: dict[str, int] = {}
        for line, row in enumerate(rows[1:], 2):
            if not row or not "".join(row).strip():
                continue
            key = row[0].strip()
            ms = milliseconds(row[1] if len(row) > 1 else None, f"{path} line {line} ({key})")
            if key in seen:
                raise LUTError(f"{path} line {line}: {key!r} is measured twice (first on line {seen[key]}); keep one")
            seen[key] = line
            if key.startswith("model:"):
                models[key[len("model:") :]] = ms
            else:
                spread = milliseconds(row[2], f"{path} line {line} ({key}) spread_ms") if len(row) > 2 and row[2].strip() else 0.0
                blocks[key] = {"ms": ms, "spread_ms": spread}
        return blocks, models
    data = read_json(path, "measurement file", LUTError)
    if not isinstance(data, dict):
        raise LUTError(f"{path}: expected a JSON object of key -> ms")
    raw_blocks = data["blocks"] if "blocks" in data else data
    if not isinstance(raw_blocks, dict):
        raise LUTError(f"{path}: 'blocks' must map layer keys to milliseconds")
    for key, value in raw_blocks.items():
        spread = value.get("spread_ms", 0.0) if isinstance(value, dict) else 0.0
        blocks[key] = {"ms": milliseconds(value, f"{path}: {key}"), "spread_ms": milliseconds(spread, f"{path}: {key} spread_ms")}
    for ident, value in (data.get("models") or {}).items() if "blocks" in data else ():
        models[ident] = milliseconds(value, f"{path}: model {ident}")
    return blocks, models


def manifest_models(manifest: str | Path) -> dict[str, search_spaces.Arch]:
    """The whole models an export's manifest lists, by id (LUTError, one line, for a bad manifest)."""
    listed = read_json(manifest, "manifest", LUTError)
    models = listed.get("models") if isinstance(listed, dict) else None
    if not isinstance(models, list):
        raise LUTError(f"{manifest}: not a manifest of 'nas lut export-blocks' (expected an object with a 'models' list)")
    out = {}
    for i, model in enumerate(models):
        if not isinstance(model, dict) or not isinstance(model.get("id"), str) or "arch" not in model:
            raise LUTError(f"{manifest}: models[{i}] is not an entry with an 'id' and an 'arch'")
        out[model["id"]] = search_spaces.Arch.from_dict(model["arch"], source=f"{manifest} models[{i}]")
    return out


def import_measurements(
    path: str | Path,
    device: str,
    out: str | Path,
    *,
    space: Space | str = DEFAULT_SPACE,
    backend: str = "coreml",
    manifest: str | Path | None = None,
    host: str = "",
) -> LUT:
    """Build a latency table from phone measurements; nothing is written unless every check passes."""
    check_writable(out, "table")
    space = search_spaces.load(space) if isinstance(space, str) else space
    blocks, models = read_measurements(path)
    known = {spec.key for spec in space.all_layers()}
    unknown = [k for k in blocks if k not in known]
    if unknown:
        raise LUTError(
            f"{path}: unknown layer key {unknown[0]!r} for space {space.name!r}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
        )
    missing = [k for k in known if k not in blocks]
    if missing:
        raise LUTError(
            f"{path}: no measurement for {len(missing)} of {len(known)} layer keys of space {space.name!r}, e.g. {missing[0]!r}"
        )
    provenance = {
        "kind": "measured",
        "host": host or "measured on the device from exported Core ML packages",
        "imported_from": str(path),
    }
    meta = table_meta(device, backend, 0, space, provenance, {})
    lut = LUT(meta, blocks)
    if models:
        archs = {}
        if manifest is not None:
            archs = manifest_models(manifest)
        known_models = {ident: arch for ident, arch in archs.items() if ident in models}
        unknown_models = [ident for ident in models if ident not in archs]
        if unknown_models:
            raise LUTError(
                f"{path}: model {unknown_models[0]!r} is not in the manifest"
                + ("" if manifest else " (pass the export's manifest.json to use model measurements)")
            )
        sums = [sum(ms for _, ms in lut.layer_ms(a)) for a in known_models.values()]
        counts = [len(a.layers()) for a in known_models.values()]
        lut.calibration = Calibration.fit(sums, counts, [models[i] for i in known_models])
    lut.save(out)
    return lut
