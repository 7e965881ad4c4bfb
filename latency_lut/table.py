"""Latency lookup tables: the file format, loading with validation, and prediction.

A table holds one measured (or estimated) latency per :attr:`search_spaces.LayerSpec.key`, and a
per-device calibration fitted from end-to-end measurements. An architecture's predicted latency is
``scale * sum(entries of its layers) + per_layer_ms * number_of_layers + offset_ms``.
"""

from __future__ import annotations

import datetime
import json
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import search_spaces
from search_spaces import Arch, Space
from search_spaces.files import atomic_write_text, read_json

from .errors import LUTError
from .host import host_mismatch

SCHEMA = 1
BACKENDS = ("torch", "torchscript", "onnxruntime", "cuda", "coreml")
PROVENANCES = ("measured", "estimated", "fitted")
REQUIRED = (
    "schema",
    "device",
    "backend",
    "threads",
    "batch",
    "space",
    "resolutions",
    "provenance",
    "versions",
    "date",
    "entries",
)


def provenance_label(kind: str) -> str:
    """How outputs name a table's kind: ``measured`` (or an empty kind: a problem without a table), or
    ``ESTIMATED`` / ``FITTED`` in capitals, so that a modelled latency never reads as a measured one."""
    return kind if kind in ("measured", "") else kind.upper()


@dataclass
class Calibration:
    """Maps the sum of per-layer latencies to end-to-end latency (fitted by least squares)."""

    scale: float = 1.0
    per_layer_ms: float = 0.0
    offset_ms: float = 0.0
    fitted_on: int = 0  # number of end-to-end measurements behind the fit
    details: dict[str, Any] = field(default_factory=dict)

    def apply(self, layer_sum_ms: np.ndarray | float, n_layers: np.ndarray | int) -> np.ndarray | float:
        return self.scale * layer_sum_ms + self.per_layer_ms * n_layers + self.offset_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "per_layer_ms": self.per_layer_ms,
            "offset_ms": self.offset_ms,
            "fitted_on": self.fitted_on,
            **({"details": self.details} if self.details else {}),
        }

    @classmethod
    def fit(cls, layer_sums: Iterable[float], n_layers: Iterable[int], measured: Iterable[float]) -> Calibration:
        """Bounded least squares of measured ~ scale * sum + per_layer * n + offset.

        The scale is kept within [0.5, 2] and the per-layer overhead non-negative: the layer count
        grows with the layer sum, and an unbounded fit can trade one for the other on noisy data.
        """
        from scipy.optimize import lsq_linear

        s, n, y = (np.asarray(list(v), dtype=float) for v in (layer_sums, n_layers, measured))
        if len(y) < 3:
            return cls(scale=float(np.median(y / s)) if len(y) else 1.0, fitted_on=len(y))
        design = np.stack([s, n, np.ones_like(s)], axis=1)
        fit = lsq_linear(design, y, bounds=([0.5, 0.0, -np.inf], [2.0, np.inf, np.inf]), method="bvls")  # exact active set
        scale, per_layer, offset = (float(v) for v in fit.x)
        return cls(scale=scale, per_layer_ms=per_layer, offset_ms=offset, fitted_on=len(y))


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and bool(np.isfinite(value))


def _check_meta(data: dict[str, Any], source: str) -> None:
    """Every field a table's predictions or outputs rely on, checked on load (one line naming the field)."""
    if not isinstance(data["device"], str) or not data["device"].strip():
        raise LUTError(f"{source}: device must be a non-empty name, got {data['device']!r}")
    for key, low in (("threads", 0), ("batch", 1)):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise LUTError(f"{source}: {key} must be an integer >= {low}, got {value!r}")
    if not isinstance(data["space"], str) or not search_spaces.is_known(data["space"]):
        raise LUTError(
            f"{source}: space {data['space']!r} is not a shipped space (a table may name only those, "
            f"or a space loaded explicitly before it)"
        )
    resolutions = data["resolutions"]
    if (
        not isinstance(resolutions, list)
        or not resolutions
        or not all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in resolutions)
    ):
        raise LUTError(f"{source}: resolutions must be a list of positive integers, got {resolutions!r}")
    if not isinstance(data["versions"], dict) or not isinstance(data["date"], str):
        raise LUTError(f"{source}: versions must be an object and date a text")


def _calibration(cal: Any, source: str) -> Calibration:
    """The calibration, checked: a finite positive scale, finite non-negative per-layer cost, a finite offset."""
    if not isinstance(cal, dict):
        raise LUTError(f"{source}: calibration must be an object, got {type(cal).__name__}")
    unknown = sorted(set(cal) - {"scale", "per_layer_ms", "offset_ms", "fitted_on", "details"})
    if unknown:
        raise LUTError(f"{source}: calibration has unknown field {unknown[0]!r}")
    checks = {"scale": lambda v: v > 0, "per_layer_ms": lambda v: v >= 0, "offset_ms": lambda v: True}
    for key, ok in checks.items():
        if key in cal and not (_is_number(cal[key]) and ok(cal[key])):
            raise LUTError(
                f"{source}: calibration {key} must be a finite{' positive' if key == 'scale' else ''}"
                f"{' non-negative' if key == 'per_layer_ms' else ''} number, got {cal[key]!r}"
            )
    fitted = cal.get("fitted_on", 0)
    if isinstance(fitted, bool) or not isinstance(fitted, int) or fitted < 0:
        raise LUTError(f"{source}: calibration fitted_on must be an integer >= 0, got {fitted!r}")
    if not isinstance(cal.get("details", {}), dict):
        raise LUTError(f"{source}: calibration details must be an object")
    return Calibration(
        **{k: cal[k] for k in ("scale", "per_layer_ms", "offset_ms", "fitted_on") if k in cal}, details=cal.get("details", {})
    )


def table_meta(
    device: str, backend: str, threads: int, space: Space, provenance: dict[str, Any], versions: dict[str, str]
) -> dict[str, Any]:
    """A new table's header: what it measured, where and how (the fields every table file starts with)."""
    return {
        "schema": SCHEMA,
        "device": device,
        "backend": backend,
        "threads": threads,
        "batch": 1,
        "space": space.ref,
        "space_name": space.name,
        "resolutions": list(space.resolutions),
        "provenance": provenance,
        "versions": versions,
        "date": datetime.date.today().isoformat(),
    }


class LUT:
    """A latency lookup table of one device and backend over one search space."""

    def __init__(
        self,
        meta: dict[str, Any],
        entries: dict[str, dict[str, Any]],
        calibration: Calibration | None = None,
        path: Path | None = None,
    ):
        self.meta = meta
        self.entries = entries
        self.calibration = calibration or Calibration()
        self.path = path
        self._space: Space | None = None
        self._cost_tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # per space: per-gene latency arrays

    # ---- identity ------------------------------------------------------------------------------
    device = property(lambda self: self.meta["device"])
    backend = property(lambda self: self.meta["backend"])
    threads = property(lambda self: self.meta["threads"])

    @property
    def provenance(self) -> str:
        return self.meta["provenance"]["kind"]

    @property
    def provenance_label(self) -> str:
        """How outputs name the table's kind: ``measured``, or ``ESTIMATED`` / ``FITTED`` in capitals (a model)."""
        return provenance_label(self.provenance)

    @property
    def error_pct(self) -> float | None:
        """The typical relative error of this table's end-to-end estimates, in percent: the held-out (or
        cross-validated) mean absolute error an estimated or fitted table stores; None for measured ones."""
        error = self.meta.get("provenance", {}).get("error")
        value = error.get("mape_pct") if isinstance(error, dict) else None
        return float(value) if _is_number(value) and value >= 0 else None

    @property
    def space(self) -> Space:
        if self._space is None:
            self._space = search_spaces.load(self.meta["space"])
        return self._space

    def host_notice(self) -> str | None:
        """A one-line notice when this measured CPU table comes from another CPU model than this host's."""
        return host_mismatch(self.backend, self.meta.get("provenance", {}), self.device)

    def __repr__(self) -> str:
        return f"LUT({self.device!r}, {self.backend}, {self.provenance}, {len(self.entries)} entries)"

    # ---- prediction ----------------------------------------------------------------------------
    def layer_ms(self, arch: Arch) -> list[tuple[str, float]]:
        """(key, ms) of each layer of `arch`; a key missing from the table is an error naming it."""
        return [(spec.key, self.layer_ms_of(spec)) for spec in arch.layers()]

    def predict(self, arch: Arch) -> float:
        """Predicted end-to-end latency of `arch` in milliseconds."""
        layers = self.layer_ms(arch)
        return float(self.calibration.apply(sum(ms for _, ms in layers), len(layers)))

    def predict_many(self, archs: Iterable[Arch] | np.ndarray) -> np.ndarray:
        """Predicted latencies (ms) of many architectures, or of an integer gene matrix
        (one row per architecture, as ``space.encode`` gives) in one vectorised pass."""
        if isinstance(archs, np.ndarray):
            return self.predict_codes(archs)
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        if any(a.search_space is not self.space for a in archs):  # another space: no shared encoding
            return np.array([self.predict(a) for a in archs])
        return self.predict_codes(np.array([self.space.encode(a) for a in archs], dtype=np.int64))

    def predict_codes(self, codes: np.ndarray, space: Space | None = None) -> np.ndarray:
        """Vectorised prediction over encoded architectures (rows of ``space.encode``) of `space`
        (default: the table's own space; any space the table serves, see :meth:`check_space`)."""
        try:
            layer_sum, n_layers = self._costs(space).total(codes)
        except ValueError as exc:
            raise LUTError(str(exc)) from None
        return np.asarray(self.calibration.apply(layer_sum, n_layers), dtype=float)

    def minimum(self, space: Space | None = None) -> tuple[float, Arch]:
        """The lowest predicted latency of any architecture of `space` (default: the table's), and that architecture."""
        cal = self.calibration
        tables = (space or self.space).cost_tables(lambda spec: cal.scale * self.layer_ms_of(spec) + cal.per_layer_ms)
        value, arch = tables.minimum()
        return value + cal.offset_ms, arch

    def _costs(self, space: Space | None = None):
        space = space or self.space
        tables = self._cost_tables.get(space)
        if tables is None:
            tables = self._cost_tables[space] = space.cost_tables(self.layer_ms_of)
        return tables

    def layer_ms_of(self, spec: search_spaces.LayerSpec) -> float:
        entry = self.entries.get(spec.key)
        if entry is None:
            where = f" ({spec.name})" if spec.name else ""
            raise LUTError(
                f"latency table {self.device!r} has no entry for layer {spec.key}{where}; "
                f"it was built for space {self.meta['space']!r}"
            )
        return entry["ms"]

    # ---- files ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            **self.meta,
            "schema": SCHEMA,
            "calibration": self.calibration.to_dict(),
            "entries": {k: self.entries[k] for k in sorted(self.entries)},
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically (a temporary file renamed over the target), so a failure loses nothing."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        self.path = path
        return path

    @classmethod
    def from_dict(cls, data: Any, source: str = "latency table") -> LUT:
        if not isinstance(data, dict):
            raise LUTError(f"{source}: not a latency table (expected a JSON object)")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise LUTError(f"{source}: not a latency table, or truncated (missing {', '.join(missing)})")
        if data["schema"] != SCHEMA:
            raise LUTError(f"{source}: schema {data['schema']!r} is not supported (this nas reads schema {SCHEMA})")
        if data["backend"] not in BACKENDS:
            raise LUTError(f"{source}: unknown backend {data['backend']!r} (accepted: {', '.join(BACKENDS)})")
        prov = data["provenance"]
        if not isinstance(prov, dict) or prov.get("kind") not in PROVENANCES:
            raise LUTError(f"{source}: provenance must be an object whose kind is measured, estimated or fitted")
        entries = data["entries"]
        if not isinstance(entries, dict) or not entries:
            raise LUTError(f"{source}: no entries")
        for key, entry in entries.items():
            ms = entry.get("ms") if isinstance(entry, dict) else None
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not np.isfinite(ms) or ms < 0:
                raise LUTError(f"{source}: entry {key}: expected a non-negative number of ms, got {ms!r}")
        _check_meta(data, source)
        calibration = _calibration(data.get("calibration") or {}, source)
        meta = {k: v for k, v in data.items() if k not in ("entries", "calibration")}
        return cls(meta, {k: dict(v) for k, v in entries.items()}, calibration)

    @classmethod
    def read(cls, path: str | Path) -> LUT:
        path = Path(path)
        data = read_json(path, "latency table", LUTError)
        lut = cls.from_dict(data, source=str(path))
        lut.path = path
        return lut

    def check_space(self, space: Space) -> None:
        """Raise unless this table serves `space`: built for it, or holding every layer key it can produce
        (a table of a larger space serves any of its sub-spaces)."""
        if self.space.name == space.name:
            return
        missing = [spec.key for spec in space.all_layers() if spec.key not in self.entries]
        if missing:
            raise LUTError(
                f"latency table {self.device!r} was built for space {self.space.name!r} and lacks "
                f"{len(missing)} layer(s) of space {space.name!r} (e.g. {missing[0]})"
            )
