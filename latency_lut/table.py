"""Latency lookup tables: the file format, loading with validation, and prediction.

A table holds one measured (or estimated) latency per :attr:`search_spaces.LayerSpec.key`, and a
per-device calibration fitted from end-to-end measurements. An architecture's predicted latency is
``scale * sum(entries of its layers) + per_layer_ms * number_of_layers + offset_ms``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import search_spaces
from search_spaces import Arch, Space, SpaceError
from search_spaces.yamlio import read_text

SCHEMA = 1
BACKENDS = ("torch", "torchscript", "onnxruntime", "cuda", "coreml")
PROVENANCES = ("measured", "estimated")
REQUIRED = ("schema", "device", "backend", "threads", "batch", "space", "resolutions", "provenance", "versions",
            "date", "entries")


class LUTError(SpaceError):
    """A bad, corrupted or mismatched latency table, or a missing entry (exit code 2 in the CLI)."""


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
        return {"scale": self.scale, "per_layer_ms": self.per_layer_ms, "offset_ms": self.offset_ms,
                "fitted_on": self.fitted_on, **({"details": self.details} if self.details else {})}

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
        fit = lsq_linear(design, y, bounds=([0.5, 0.0, -np.inf], [2.0, np.inf, np.inf]))
        scale, per_layer, offset = (float(v) for v in fit.x)
        return cls(scale=scale, per_layer_ms=per_layer, offset_ms=offset, fitted_on=len(y))


class LUT:
    """A latency lookup table of one device and backend over one search space."""

    def __init__(self, meta: dict[str, Any], entries: dict[str, dict[str, Any]], calibration: Calibration | None = None,
                 path: Path | None = None):
        self.meta = meta
        self.entries = entries
        self.calibration = calibration or Calibration()
        self.path = path
        self._space: Space | None = None
        self._code_tables: dict | None = None

    # ---- identity ------------------------------------------------------------------------------
    device = property(lambda self: self.meta["device"])
    backend = property(lambda self: self.meta["backend"])
    threads = property(lambda self: self.meta["threads"])

    @property
    def provenance(self) -> str:
        return self.meta["provenance"]["kind"]

    @property
    def space(self) -> Space:
        if self._space is None:
            self._space = search_spaces.load(self.meta["space"])
        return self._space

    def __repr__(self) -> str:
        return f"LUT({self.device!r}, {self.backend}, {self.provenance}, {len(self.entries)} entries)"

    # ---- prediction ----------------------------------------------------------------------------
    def layer_ms(self, arch: Arch) -> list[tuple[str, float]]:
        """(key, ms) of each layer of `arch`; a key missing from the table is an error naming it."""
        out = []
        for spec in arch.layers():
            entry = self.entries.get(spec.key)
            if entry is None:
                raise LUTError(f"latency table {self.device!r} has no entry for layer {spec.key} ({spec.name}); "
                               f"it was built for space {self.meta['space']!r}")
            out.append((spec.key, entry["ms"]))
        return out

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
        return self.predict_codes(np.array([self.space.encode(a) for a in archs], dtype=np.int64))

    def predict_codes(self, codes: np.ndarray) -> np.ndarray:
        """Vectorised prediction over encoded architectures of this table's space."""
        tables = self._tables()
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != tables["n_genes"]:
            raise LUTError(f"expected an (N, {tables['n_genes']}) gene matrix, got shape {codes.shape}")
        res = codes[:, 0]
        total = np.zeros(len(codes))
        n_layers = np.full(len(codes), 2)  # stem and head
        col = 1
        prev_w = None
        for s, stage_tables in enumerate(tables["stages"]):
            depth_idx, width_idx = codes[:, col], codes[:, col + 1]
            col += 2
            depth = stage_tables["depths"][depth_idx]
            if s == 0:
                total += tables["stem"][res, width_idx]
            else:
                total += stage_tables["down"][res, prev_w, width_idx]
                n_layers += 1
            for i in range(stage_tables["max_depth"]):
                active = i < depth
                ratio_idx, mixer_idx = codes[:, col], codes[:, col + 1]
                col += 2
                total += active * (stage_tables["ffn"][res, width_idx, ratio_idx]
                                   + stage_tables["mixer"][res, width_idx, mixer_idx])
                n_layers += active * (1 + (stage_tables["mixer_is_layer"][mixer_idx]))
            prev_w = width_idx
        total += tables["head"][res, prev_w]
        return np.asarray(self.calibration.apply(total, n_layers), dtype=float)

    def _tables(self) -> dict:
        """Per-gene latency arrays, filled by laying out probe architectures with the space's own
        layout code (so the vectorised path and `predict` read the same keys)."""
        if self._code_tables is not None:
            return self._code_tables
        space = self.space
        genes = space.genes()
        base = [0] * len(genes)
        col_of = {name: i for i, (name, _) in enumerate(genes)}

        def layer_ms(codes: list[int], name: str) -> float:
            arch = space.decode(codes)
            spec = next(sp for sp in arch.layers() if sp.name == name)
            return self.layer_ms_of(spec)

        n_res = len(space.resolutions)
        out: dict[str, Any] = {"n_genes": len(genes), "stages": []}
        first = space.stages[0]
        out["stem"] = np.zeros((n_res, len(first.widths)))
        last = space.stages[-1]
        out["head"] = np.zeros((n_res, len(last.widths)))
        for r in range(n_res):
            for w in range(len(first.widths)):
                codes = base.copy()
                codes[0], codes[col_of["s1.width"]] = r, w
                out["stem"][r, w] = layer_ms(codes, "stem")
            for w in range(len(last.widths)):
                codes = base.copy()
                codes[0], codes[col_of[f"s{len(space.stages)}.width"]] = r, w
                out["head"][r, w] = layer_ms(codes, "head")
        for s, st in enumerate(space.stages, 1):
            prev = space.stages[s - 2] if s > 1 else None
            tab = {"depths": np.array(st.depths), "max_depth": max(st.depths),
                   "ffn": np.zeros((n_res, len(st.widths), len(st.ratios))),
                   "mixer": np.zeros((n_res, len(st.widths), len(st.mixers))),
                   "mixer_is_layer": np.array([m != "none" for m in st.mixers], dtype=np.int64)}
            if prev is not None:
                tab["down"] = np.zeros((n_res, len(prev.widths), len(st.widths)))
            for r in range(n_res):
                for w in range(len(st.widths)):
                    codes = base.copy()
                    codes[0], codes[col_of[f"s{s}.width"]] = r, w
                    for e in range(len(st.ratios)):
                        codes[col_of[f"s{s}.b0.ratio"]] = e
                        tab["ffn"][r, w, e] = layer_ms(codes, f"stage{s}_block0_ffn")
                    for m, mixer in enumerate(st.mixers):
                        if mixer != "none":
                            codes[col_of[f"s{s}.b0.mixer"]] = m
                            tab["mixer"][r, w, m] = layer_ms(codes, f"stage{s}_block0_mixer")
                    if prev is not None:
                        for p in range(len(prev.widths)):
                            codes2 = codes.copy()
                            codes2[col_of[f"s{s - 1}.width"]] = p
                            tab["down"][r, p, w] = layer_ms(codes2, f"stage{s}_down")
            out["stages"].append(tab)
        self._code_tables = out
        return out

    def layer_ms_of(self, spec: search_spaces.LayerSpec) -> float:
        entry = self.entries.get(spec.key)
        if entry is None:
            raise LUTError(f"latency table {self.device!r} has no entry for layer {spec.key}")
        return entry["ms"]

    # ---- files ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "schema": SCHEMA, "calibration": self.calibration.to_dict(),
                "entries": {k: self.entries[k] for k in sorted(self.entries)}}

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
            raise LUTError(f"{source}: provenance must be an object whose kind is measured or estimated")
        entries = data["entries"]
        if not isinstance(entries, dict) or not entries:
            raise LUTError(f"{source}: no entries")
        for key, entry in entries.items():
            ms = entry.get("ms") if isinstance(entry, dict) else None
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not np.isfinite(ms) or ms < 0:
                raise LUTError(f"{source}: entry {key}: expected a non-negative number of ms, got {ms!r}")
        cal = data.get("calibration") or {}
        try:
            calibration = Calibration(**{k: cal[k] for k in ("scale", "per_layer_ms", "offset_ms", "fitted_on") if k in cal},
                                      details=cal.get("details", {}))
        except TypeError as exc:
            raise LUTError(f"{source}: bad calibration ({exc})") from None
        meta = {k: v for k, v in data.items() if k not in ("entries", "calibration")}
        return cls(meta, {k: dict(v) for k, v in entries.items()}, calibration)

    @classmethod
    def read(cls, path: str | Path) -> LUT:
        path = Path(path)
        text = read_text(path, "latency table", LUTError)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LUTError(f"{path}: corrupted or truncated latency table (invalid JSON at line {exc.lineno})") from None
        lut = cls.from_dict(data, source=str(path))
        lut.path = path
        return lut

    def check_space(self, space: Space) -> None:
        """Raise unless this table was built for `space` (by the space's declared name)."""
        if self.space.name != space.name:
            raise LUTError(f"latency table {self.device!r} was built for space {self.space.name!r}, not {space.name!r}")


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
