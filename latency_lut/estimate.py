"""An estimated latency table for a device nobody here can measure: iPhone 12, iOS 16, Core ML.

The table is built from a per-layer roofline cost model whose constants are fitted only to the
end-to-end latencies that the EfficientFormerV2 paper measured on that phone (S0 0.9 ms, S1 1.1 ms,
S2 1.6 ms, L 2.7 ms; Li et al., ICCV 2023, arXiv 2212.08059)::

    layer_ms = max(macs / peak, bytes / bandwidth) + ops * per_op
    arch_ms  = sum of its layer_ms + fixed                      (fixed: per inference)

Three constants are fitted (four published points cannot support more): ``peak``, ``bandwidth`` and
``fixed`` in the default model ``roofline+fixed`` (``per_op`` pinned at its lower bound, where a
four-constant fit puts it); ``peak``, ``bandwidth`` and ``per_op`` with ``fixed = 0`` in the model
``roofline``, a plain sum of layers, which fits the four points much worse (the published latencies
are close to ``0.5 ms + MACs / 1.2 TMAC/s``). ``fixed`` is stored as the table's calibration offset,
so every entry stays the cost of its layer alone.

Features come from the real layer modules, not from parallel formulas:

* ``macs``: :func:`supernet.count_layer` (convolutions, matmuls and linear layers).
* ``ops`` and activation traffic: the layer is run once (batch 1, on the ``meta`` device, so nothing
  is computed) under a :class:`~torch.utils._python_dispatch.TorchDispatchMode` that sees every aten op.
  What a Core ML compile removes is left out: ops that only touch parameters and constants (folded at
  conversion, e.g. the position-bias gather), views other than transposes, and the BatchNorm,
  activation and per-channel scale / bias that directly follow a convolution (fused into it, as
  coremltools' ``fuse_conv_batchnorm`` / ``fuse_conv_scale`` / ``fuse_conv_bias`` passes and the
  Neural Engine's fused activations do). Every remaining op counts once in ``ops`` and its activation
  inputs and outputs count in the traffic.
* ``bytes``: fp16, ``2 * (params + activation elements read and written)``.

``python -m latency_lut.estimate`` rebuilds ``latency_lut/tables/iphone12-coreml.json`` and prints the
fitted constants, the fit, and its leave-one-out errors (each preset predicted by a refit on the other three).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import search_spaces
from search_spaces import LayerSpec
from search_spaces.provenance import versions

from .table import LUT, Calibration, table_meta

DEVICE = "iphone12-coreml"
SPACE = "efficientformerv2"
DEFAULT_OUT = Path(__file__).parent / "tables" / f"{DEVICE}.json"
#: End-to-end latencies (ms) published for the presets on iPhone 12, iOS 16, Core ML, all compute units.
PUBLISHED_MS = {"s0": 0.9, "s1": 1.1, "s2": 1.6, "l": 2.7}
SOURCE = (
    "Li et al., Rethinking Vision Transformers for MobileNet Size and Speed (EfficientFormerV2), ICCV 2023, "
    "arXiv 2212.08059, ImageNet-1K results table and Figure 1: latency of EfficientFormerV2-S0/S1/S2/L measured on "
    "iPhone 12 (A14), iOS 16, Core ML, all compute units, batch 1, 224x224, with Xcode's Core ML performance "
    "report: 0.9 / 1.1 / 1.6 / 2.7 ms"
)
BYTES_PER_ELEMENT = 2  # fp16, what a Core ML ML program runs on the Neural Engine

#: The model's constants: name -> (display unit, (lower, upper) bound in that unit, factor to per-ms units).
CONSTANTS = {
    "peak_tmacs": ("TMAC/s", (0.1, 20.0), 1e9),  # 1 TMAC/s = 1e9 MAC/ms; the A14 Neural Engine is quoted at 11 TOPS
    "bandwidth_gbs": ("GB/s", (5.0, 100.0), 1e6),  # 1 GB/s = 1e6 bytes/ms
    "per_op_us": ("us", (0.1, 50.0), 1e-3),  # 1 us = 1e-3 ms
    "fixed_ms": ("ms", (0.01, 2.0), 1.0),  # per inference: the Core ML call, input and output transfer
}
#: Which constants each model fits (three each: four presets cannot support more) and which it pins.
MODELS: dict[str, dict[str, Any]] = {
    "roofline+fixed": {
        "formula": "sum over layers of [max(macs/peak, bytes/bandwidth) + ops*per_op] + fixed",
        "free": ("peak_tmacs", "bandwidth_gbs", "fixed_ms"),
        "pinned": {"per_op_us": 0.1},
        "why": "a fit of all four constants drives per_op to its lower bound, 0.1 us: the presets show no per-op "
        "cost beyond the roofline, and a fourth free constant leaves the leave-one-out fits underdetermined",
    },
    "roofline": {
        "formula": "sum over layers of [max(macs/peak, bytes/bandwidth) + ops*per_op]",
        "free": ("peak_tmacs", "bandwidth_gbs", "per_op_us"),
        "pinned": {"fixed_ms": 0.0},
        "why": "no per-inference cost: the sum of layers alone",
    },
}
DEFAULT_MODEL = "roofline+fixed"


# ---- features ----------------------------------------------------------------------------------


def _counter_mode():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    aten = torch.ops.aten
    # Under inference mode the dispatcher shows the composite ops (conv2d, batch_norm, linear) undecomposed.
    conv_ops = {aten.conv2d.default, aten.convolution.default}
    conv_epilogue = {aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default, aten.native_batch_norm.default}
    per_channel = {aten.mul.Tensor, aten.add.Tensor, aten.sub.Tensor, aten.div.Tensor}
    movers = {aten.transpose.int, aten.permute.default, aten.t.default}  # views that a device must copy
    activations = {
        aten.gelu.default,
        aten.relu.default,
        aten.silu.default,
        aten.sigmoid.default,
        aten.hardswish.default,
        aten.tanh.default,
    }

    class Counter(TorchDispatchMode):
        """Counts the aten ops that depend on the layer input, and the activation elements they move."""

        def __init__(self, inputs: Sequence[torch.Tensor]):
            super().__init__()
            self.keep: list[torch.Tensor] = list(inputs)  # held, so that no id is reused while counting
            self.act = {id(t) for t in inputs}  # tensors derived from the layer input
            self.conv_out: set[int] = set()  # conv outputs: a BN, activation, scale or bias on them fuses
            self.ops = 0
            self.elements = 0  # activation elements read and written

        def _mark(self, tensors, conv: bool) -> None:
            for t in tensors:
                self.keep.append(t)
                self.act.add(id(t))
                if conv:
                    self.conv_out.add(id(t))

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            act_in = [t for t in ins if id(t) in self.act]
            if not act_in:  # parameters and constants only: folded when the model is converted
                return out
            outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            if func.is_view and func not in movers:  # reshape, flatten, expand...: metadata only
                self._mark(outs, conv=False)
                return out
            a = act_in[0]
            fused = (
                len(act_in) == 1
                and id(a) in self.conv_out
                and (
                    func in conv_epilogue
                    or func in activations
                    or (func in per_channel and all(t is a or t.numel() in (1, a.shape[1]) for t in ins))
                )
            )
            if fused:
                self._mark(outs[:1], conv=True)
                return out
            self._mark(outs, conv=func in conv_ops)
            self.ops += 1
            self.elements += sum(t.numel() for t in act_in) + sum(t.numel() for t in outs)
            return out

    return Counter


@functools.cache
def layer_features(spec: LayerSpec) -> tuple[int, int, int]:
    """(macs, bytes, ops) of one layer at batch 1, fp16 (cached per key)."""
    import torch

    import supernet

    macs = supernet.count_layer(spec).macs
    params = supernet.count_layer(spec).params
    counter_cls = _counter_mode()
    for device in ("meta", "cpu"):  # meta computes nothing; cpu is the fallback should an op lack a meta kernel
        try:
            with torch.device(device):
                module = supernet.build_layer(spec).eval()
                x = torch.zeros(1, spec.cin, spec.grid, spec.grid)
            with torch.inference_mode():
                counter = counter_cls([x])
                with counter:
                    module(x)
            break
        except (NotImplementedError, RuntimeError):
            if device == "cpu":
                raise
    return int(macs), int(BYTES_PER_ELEMENT * (params + counter.elements)), int(counter.ops)


def features(specs: Sequence[LayerSpec]) -> np.ndarray:
    """An (N, 3) float array of (macs, bytes, ops), one row per layer."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return np.array([layer_features(spec) for spec in specs], dtype=float).reshape(-1, 3)
    finally:
        torch.set_num_threads(threads)


# ---- the cost model ----------------------------------------------------------------------------


def _layer_ms(feats: np.ndarray, peak: float, bandwidth: float, per_op: float, p: float) -> np.ndarray:
    compute, memory = feats[:, 0] / peak, feats[:, 1] / bandwidth
    if np.isinf(p):
        roof = np.maximum(compute, memory)
    else:
        top = np.maximum(np.maximum(compute, memory), 1e-30)
        roof = top * ((compute / top) ** p + (memory / top) ** p) ** (1 / p)
    return roof + feats[:, 2] * per_op


def layer_ms(feats: np.ndarray, constants: dict[str, float], p: float = np.inf) -> np.ndarray:
    """Estimated ms of each row (macs, bytes, ops) of `feats`: ``max(compute, memory) + ops * per_op``
    (a finite `p` replaces the max by the smooth p-norm ``(compute**p + memory**p) ** (1/p)``)."""
    peak, bandwidth, per_op = (_per_ms(constants, n) for n in ("peak_tmacs", "bandwidth_gbs", "per_op_us"))
    return _layer_ms(np.asarray(feats, dtype=float).reshape(-1, 3), peak, bandwidth, per_op, p)


def predict_ms(arch_feats: Sequence[np.ndarray], constants: dict[str, float], p: float = np.inf) -> list[float]:
    """End-to-end ms of architectures given as (n_layers, 3) feature arrays: their layers plus the fixed cost."""
    return [float(layer_ms(f, constants, p).sum() + constants["fixed_ms"]) for f in arch_feats]


def fit(
    arch_feats: Sequence[np.ndarray],
    measured_ms: Sequence[float],
    *,
    model: str = DEFAULT_MODEL,
    p: float = np.inf,
    starts: int = 5,
) -> dict[str, float]:
    """Fit `model`'s free constants: least squares of the log of :func:`predict_ms` against the log of
    `measured_ms`, within the bounds of CONSTANTS, from a ``starts**k`` grid of starting points
    (k free constants); every constant, pinned ones included, is returned in its display unit."""
    from scipy.optimize import least_squares

    free, pinned = MODELS[model]["free"], MODELS[model]["pinned"]
    y = np.log(np.asarray(measured_ms, dtype=float))
    lower = np.log([CONSTANTS[n][1][0] for n in free])
    upper = np.log([CONSTANTS[n][1][1] for n in free])

    def constants_of(log_x: np.ndarray) -> dict[str, float]:
        return {**pinned, **dict(zip(free, np.exp(log_x)))}

    def residuals(log_x: np.ndarray) -> np.ndarray:
        return np.log(predict_ms(arch_feats, constants_of(log_x), p)) - y

    best = None
    grid = np.linspace(0.1, 0.9, starts)
    for idx in np.ndindex(*(starts,) * len(free)):
        x0 = lower + (upper - lower) * grid[list(idx)]
        res = least_squares(residuals, x0, bounds=(lower, upper), xtol=1e-12, ftol=1e-12, gtol=1e-12)
        if best is None or res.cost < best.cost - 1e-15:
            best = res
    return {name: float(constants_of(best.x)[name]) for name in CONSTANTS}


def _per_ms(constants: dict[str, float], name: str) -> float:
    return constants[name] * CONSTANTS[name][2]


def preset_features(space: search_spaces.Space | None = None, names: Sequence[str] = tuple(PUBLISHED_MS)) -> list[np.ndarray]:
    """The (n_layers, 3) feature array of each named preset."""
    space = space or search_spaces.load(SPACE)
    return [features(space.preset(name).layers()) for name in names]


def evaluate(
    arch_feats: Sequence[np.ndarray],
    names: Sequence[str],
    measured_ms: Sequence[float],
    *,
    model: str = DEFAULT_MODEL,
    p: float = np.inf,
) -> dict[str, Any]:
    """The fit on every point with its in-sample errors, and the leave-one-out errors (refit without
    each point, predict it)."""
    measured_ms = [float(v) for v in measured_ms]
    constants = fit(arch_feats, measured_ms, model=model, p=p)
    predicted = predict_ms(arch_feats, constants, p)
    fit_points = [
        {"preset": n, "published_ms": m, "predicted_ms": round(q, 4), "error_pct": round(100 * (q / m - 1), 2)}
        for n, m, q in zip(names, measured_ms, predicted)
    ]
    loo = []
    for i, name in enumerate(names):
        keep = [j for j in range(len(names)) if j != i]
        c = fit([arch_feats[j] for j in keep], [measured_ms[j] for j in keep], model=model, p=p)
        q = predict_ms([arch_feats[i]], c, p)[0]
        loo.append(
            {
                "preset": name,
                "published_ms": measured_ms[i],
                "predicted_ms": round(q, 4),
                "error_pct": round(100 * (q / measured_ms[i] - 1), 2),
                "constants": {k: round(v, 6) for k, v in c.items()},
            }
        )
    return {
        "model": model,
        "constants": constants,
        "fit_points": fit_points,
        "leave_one_out": loo,
        "in_sample_max_abs_error_pct": max(abs(r["error_pct"]) for r in fit_points),
        "loo_mean_abs_error_pct": round(float(np.mean([abs(r["error_pct"]) for r in loo])), 2),
    }


# ---- the table ----------------------------------------------------------------------------------


def _fmt(constants: dict[str, float]) -> str:
    return ", ".join(f"{name} = {constants[name]:.4g} {CONSTANTS[name][0]}" for name in CONSTANTS)


def build_estimated_table(out_path: str | Path = DEFAULT_OUT, *, model: str = DEFAULT_MODEL, p: float = np.inf) -> LUT:
    """Fit `model` to the published preset latencies and write the estimated table of every layer key."""
    space = search_spaces.load(SPACE)
    names = list(PUBLISHED_MS)
    specs = space.all_layers()
    feats = features(specs)
    arch_feats = preset_features(space, names)
    published = [PUBLISHED_MS[n] for n in names]
    result = evaluate(arch_feats, names, published, model=model, p=p)
    others = {m: evaluate(arch_feats, names, published, model=m, p=p) for m in MODELS if m != model}
    constants = result["constants"]
    ms = layer_ms(feats, constants, p)
    entries = {
        spec.key: {"ms": round(float(v), 6), "spread_ms": 0.0, "macs": int(f[0]), "bytes": int(f[1]), "ops": int(f[2])}
        for spec, f, v in zip(specs, feats, ms)
    }
    roof = "max(macs / peak, bytes / bandwidth)" if np.isinf(p) else f"((macs/peak)^{p} + (bytes/bandwidth)^{p})^(1/{p})"
    spec_model = MODELS[model]
    provenance = {
        "kind": "estimated",
        "method": (
            f"Not a measurement: a per-layer roofline cost model ({model!r}), layer_ms = {roof} + ops * per_op, "
            "and an architecture's latency = sum of its layers + fixed_ms (the table's calibration offset; "
            "scale 1). Features from each layer module itself: macs from supernet.count_layer; ops and "
            "activation traffic from running the module once (batch 1, meta device) under a torch dispatch "
            "mode, counting only ops that depend on the input (parameter-only ops are folded at conversion), "
            "views free except transposes, and BatchNorm / activation / per-channel scale or bias right after "
            "a conv fused into it; bytes = 2 * (params + activation elements read and written), fp16. "
            f"Fitted constants: {', '.join(spec_model['free'])}; pinned: "
            f"{', '.join(f'{k} = {v:g}' for k, v in spec_model['pinned'].items())} ({spec_model['why']}). "
            "Fit: squared log error of the predicted end-to-end latency of the 4 presets against the published "
            "values below (scipy least_squares, multi-start, bounds "
            + "; ".join(f"{n} {lo:g}-{hi:g} {unit}" for n, (unit, (lo, hi), _) in CONSTANTS.items())
            + f"). Result: {_fmt(constants)}; in-sample errors within +-{result['in_sample_max_abs_error_pct']}%, "
            f"leave-one-out mean absolute error {result['loo_mean_abs_error_pct']}%. The published values are "
            "rounded to 0.1 ms (+-2 to 6%). Single layers, other mixers and other resolutions are extrapolations "
            "of this model: replace the table with measurements (nas lut export-blocks / nas lut import) when a "
            "phone is at hand."
        ),
        "sources": [SOURCE],
        "threads": "0 = not applicable: Core ML schedules the Neural Engine, GPU and CPU itself (all compute units)",
        "model": model,
        "fitted_constants": {name: round(constants[name], 6) for name in CONSTANTS},
        "constant_units": {name: CONSTANTS[name][0] for name in CONSTANTS},
        "smooth_max_p": "inf (hard max)" if np.isinf(p) else p,
        "fit_points": [{k: r[k] for k in ("preset", "published_ms", "predicted_ms")} for r in result["fit_points"]],
        "in_sample_error_pct": {r["preset"]: r["error_pct"] for r in result["fit_points"]},
        "leave_one_out": result["leave_one_out"],
        "loo_mean_abs_error_pct": result["loo_mean_abs_error_pct"],
        "other_models": {
            m: {
                "fitted_constants": {k: round(v, 6) for k, v in r["constants"].items()},
                "in_sample_error_pct": {x["preset"]: x["error_pct"] for x in r["fit_points"]},
                "loo_error_pct": {x["preset"]: x["error_pct"] for x in r["leave_one_out"]},
                "loo_mean_abs_error_pct": r["loo_mean_abs_error_pct"],
            }
            for m, r in others.items()
        },
    }
    meta = table_meta(DEVICE, "coreml", 0, space, provenance, versions("torch", "numpy", "scipy"))
    fixed = round(constants["fixed_ms"], 6)
    calibration = Calibration(
        scale=1.0,
        per_layer_ms=0.0,
        offset_ms=fixed,
        fitted_on=len(names) if fixed else 0,
        details={
            "note": (
                "offset_ms is the cost model's fitted per-inference constant fixed_ms (Core ML call, input and output "
                "transfer), fitted jointly with the layer constants on the sum of layer estimates; no separate "
                "calibration was fitted"
                if fixed
                else "identity: the model's constants were fitted on the plain sum of layer estimates against the "
                "published end-to-end latencies, so no separate calibration is applied"
            ),
            "published_ms": dict(zip(names, published)),
        },
    )
    lut = LUT(meta, entries, calibration)
    lut.save(out_path)
    return lut


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latency_lut.estimate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"table to write (default {DEFAULT_OUT})")
    parser.add_argument("--model", choices=list(MODELS), default=DEFAULT_MODEL, help=f"(default {DEFAULT_MODEL})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    features(search_spaces.load(SPACE).all_layers())  # cached for the build
    feature_s = time.perf_counter() - started
    lut = build_estimated_table(args.out, model=args.model)
    prov = lut.meta["provenance"]
    print(f"wrote {args.out}: {len(lut.entries)} entries (features of every key in {feature_s:.1f} s)")
    print(f"model {args.model!r}: {MODELS[args.model]['formula']}")
    for name, (unit, _, _) in CONSTANTS.items():
        how = "fitted" if name in MODELS[args.model]["free"] else "pinned"
        print(f"  {name:14s} {prov['fitted_constants'][name]:10.4g} {unit:7s} {how}")
    print(f"{'preset':8s} {'published':>9s} {'fit':>8s} {'err%':>7s} {'LOO':>8s} {'LOO err%':>9s}")
    for point, loo in zip(prov["fit_points"], prov["leave_one_out"]):
        err = prov["in_sample_error_pct"][point["preset"]]
        print(
            f"{point['preset']:8s} {point['published_ms']:9.2f} {point['predicted_ms']:8.3f} {err:7.2f} "
            f"{loo['predicted_ms']:8.3f} {loo['error_pct']:9.2f}"
        )
    print(f"leave-one-out mean |error| {prov['loo_mean_abs_error_pct']:.2f}%")
    for m, r in prov["other_models"].items():
        print(
            f"other model {m!r}: {_fmt(r['fitted_constants'])}; in-sample {r['in_sample_error_pct']}, "
            f"LOO {r['loo_error_pct']} (mean |error| {r['loo_mean_abs_error_pct']}%)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
