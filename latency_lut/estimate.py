"""An estimated latency table for a device nobody here can measure: iPhone 12, iOS 16, Core ML.

The table is the op-aware cost model of :mod:`latency_lut.costmodel` fitted to every published
whole-model latency on that phone's A14 chip that we know of (:data:`latency_lut.published.PUBLISHED`:
the four EfficientFormerV2 presets and 51 models of fifteen other families, RepViT, MobileOne, MobileNet,
MNASNet, MixNet, ShuffleNet, EfficientFormer, EfficientNet, PoolFormer, ResNet, SwiftFormer, FastViT,
MobileViTv2, DeiT and ConvNeXt, some timed on an iPhone 12 Pro). Each layer key's entry is its features
times the fitted coefficients; the fitted per-inference constant is the table's calibration offset.

Every feature is fitted, with one tie: the matrix products of attention (two activations) share the
coefficient of the products with a weight. Few families have attention: on the 25 points before
FastViT an untied fit with EfficientFormerV2 held out learnt that coefficient from EfficientFormer
alone and sent it to its bound (EfficientFormerV2 +85% held out); tied, the held-out errors were 13.4%
against 27.2%. Every design choice after the first fit was made with the held-out errors in view: that
tie, the sigmoid-family feature, the high-resolution feature and the featuriser's rules that a transpose
undone across per-position ops, the convolution pieces of a concatenation and a channel shuffle move no
data. On the 55 points: 8.4% mean absolute error held out by family, Kendall tau 0.926, every family's
mean signed error within +-20%; without the high-resolution feature 12.4%, 0.890; without the sigmoid
feature 12.8%, 0.866; with undone transposes, concatenations or shuffles priced as copies 15.9%, 20.7%,
10.7%; choosing among those options and six more candidates per held-out family by the others (nested,
``bench/bench_phone_features.py``) 9.0%, 0.935. Other phones' published tables, which are never fitted,
come within 16-20% after one speed factor each, tau 0.68-0.91 (``bench/bench_phone_other_tables.py``).
No feature subset is chosen by the errors the table reports (an earlier version picked, among 511
subsets, the one with the lowest leave-one-family-out error: 10.3% as reported, 19.4% when the choice
was held out too). So the leave-one-family-out errors stored in the table's provenance and shown beside
every latency it estimates are estimates for a family the fit has not seen, somewhat optimistic for the
choices above.

``python -m latency_lut.estimate`` rebuilds ``latency_lut/tables/iphone12-coreml.json`` (seconds) and
prints the fit and the held-out error of every published point.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import search_spaces
from search_spaces.provenance import versions

from . import costmodel
from .published import PUBLISHED, PublishedLatency, point_key, reference_features
from .table import LUT, Calibration, table_meta

DEVICE = "iphone12-coreml"
SPACE = "efficientformerv2"
DEFAULT_OUT = Path(__file__).parent / "tables" / f"{DEVICE}.json"
#: The features fitted (every one: none is chosen by the errors the table reports).
FITTED_FEATURES = costmodel.FEATURES
#: Coefficients shared: attention's matrix products cost what a product with a weight does.
TIED = {"attention_gmacs": "linear_gmacs"}


def published_points(
    space: search_spaces.Space | None = None, *, fitted: bool = True
) -> tuple[list[PublishedLatency], np.ndarray]:
    """The published records (fitted ones, or the check points with ``fitted=False``) and their
    whole-model feature rows: presets from this project's layers, the others from the committed data."""
    space = space or search_spaces.load(SPACE)
    references = reference_features()
    records = [r for r in PUBLISHED if r.fitted == fitted]
    rows = [
        costmodel.arch_features(space.preset(r.model.removeprefix("preset:")))
        if r.model.startswith("preset:")
        else references[r.key]
        for r in records
    ]
    return records, np.array(rows, dtype=float).reshape(-1, len(costmodel.FEATURES))


def study(space: search_spaces.Space | None = None, *, features: Sequence[str] = FITTED_FEATURES) -> dict[str, Any]:
    """Fit `features` (attention tied to the weight-matrix products) and evaluate leave-one-family-out;
    everything the table's provenance records."""
    records, x = published_points(space)
    y = np.array([r.ms for r in records])
    families = [r.family for r in records]
    held_out = costmodel.leave_group_out(x, y, families, use=features, tied=TIED)
    iphone12 = np.array([r.phone == "iPhone 12" for r in records])
    model = costmodel.fit_cost_model(x, y, use=features, tied=TIED)
    in_sample = model.predict(x)
    checks, x_check = published_points(space, fitted=False)
    check_ms = model.predict(x_check) if len(checks) else np.zeros(0)
    points = [
        {
            "model": r.model,
            "family": r.family,
            "published_ms": r.ms,
            "source": r.source,
            "phone": r.phone,
            "resolution": r.resolution,
            **({"note": r.note} if r.note else {}),
            **({"alternatives": [{"ms": ms, "source": src} for ms, src in r.alternatives]} if r.alternatives else {}),
            "fitted_ms": round(float(p), 4),
            "held_out_ms": round(float(h), 4),
            "held_out_error_pct": round(float(e), 2),
        }
        for r, p, h, e in zip(records, in_sample, held_out["predicted_ms"], held_out["error_pct"])
    ]
    return {
        "features": list(features),
        "model": model,
        "points": points,
        "held_out": held_out["metrics"],
        # the same held-out predictions scored on the points timed on an iPhone 12 itself (not a 12 Pro)
        "held_out_iphone12": costmodel.rank_metrics(*(v[iphone12] for v in (held_out["predicted_ms"], y))),
        "held_out_family_mean_signed_pct": held_out["group_mean_signed_pct"],
        "in_sample": costmodel.rank_metrics(in_sample, y),
        "checks": [
            {
                "model": r.model,
                "family": r.family,
                "published_ms": r.ms,
                "source": r.source,
                "note": r.note,
                "predicted_ms": round(float(p), 4),
                "error_pct": round(100 * (float(p) / r.ms - 1), 2),
            }
            for r, p in zip(checks, check_ms)
        ],
    }


def build_estimated_table(out_path: str | Path = DEFAULT_OUT, *, features: Sequence[str] = FITTED_FEATURES) -> LUT:
    """Fit the cost model to the published latencies and write the estimated table of every layer key."""
    space = search_spaces.load(SPACE)
    result = study(space, features=features)
    model: costmodel.CostModel = result["model"]
    specs = space.all_layers()
    feats = costmodel.specs_features(specs)
    ms = model.layer_ms(feats)
    entries = {
        spec.key: {"ms": round(float(v), 6), "spread_ms": 0.0, "features": [round(float(f), 9) for f in row]}
        for spec, row, v in zip(specs, feats, ms)
    }
    held = result["held_out"]
    provenance = {
        "kind": "estimated",
        "method": (
            "Not a measurement: an op-aware cost model, ms = fixed_ms + sum(coefficient * feature), with features "
            "from each layer module itself (run once on the meta device under a torch dispatch mode: dense, "
            "depthwise, weight and attention MACs; weights read; normalisation, element-wise, sigmoid-family and "
            "data-movement elements, a transpose undone across per-position ops, the pieces of a channel "
            "concatenation that convolutions write in place and a channel shuffle moving none; elements of images at "
            "least 112 px wide; ops), fitted by "
            "bounded robust least squares (soft L1 on relative errors) to "
            f"{len(result['points'])} published whole-model latencies on the A14 of iPhone 12 and 12 Pro (Core ML, batch 1, "
            "at the phone and resolution each point records, with its source). Features fitted: "
            + ", ".join(result["features"])
            + " (fixed in advance, not chosen by the errors below), attention's matrix products tied to the "
            "weight-matrix products' coefficient (few families have attention: untied, a held-out family's attention "
            "cost is learnt from the few others); MAC coefficients bounded below by "
            f"{costmodel.LOWER_PEAK_TMACS:g} TMAC/s, the A14 Neural Engine's peak. "
            f"Held out by family: mean absolute error {held['mape_pct']}%, {held['within_20_pct']}% within +-20%, "
            f"Kendall tau {held['kendall_tau']}. Replace the table with measurements (nas lut export-blocks / "
            "nas lut import) when a phone is at hand."
        ),
        "sources": sorted({p["source"] for p in result["points"]}),
        "threads": "0 = not applicable: Core ML schedules the Neural Engine, GPU and CPU itself (all compute units)",
        "features": list(costmodel.FEATURES),
        "fitted_features": result["features"],
        "cost_model": model.to_dict(),
        "error": {
            "how": "leave-one-family-out over the published points: each family predicted by a fit without it",
            **held,
            "family_mean_signed_pct": result["held_out_family_mean_signed_pct"],
            "iphone12_points": result["held_out_iphone12"],
        },
        "in_sample": result["in_sample"],
        "points": result["points"],
        "checks": result["checks"],
        "tied": dict(TIED),
    }
    meta = table_meta(DEVICE, "coreml", 0, space, provenance, versions("torch", "numpy", "scipy"))
    calibration = Calibration(
        scale=1.0,
        per_layer_ms=0.0,
        offset_ms=round(model.fixed_ms, 6),
        fitted_on=len(result["points"]),
        details={
            "note": "offset_ms is the cost model's fitted per-inference constant fixed_ms, fitted jointly with the "
            "coefficients on whole-model latencies; no separate calibration"
        },
    )
    lut = LUT(meta, entries, calibration)
    lut.save(out_path)
    return lut


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latency_lut.estimate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"table to write (default {DEFAULT_OUT})")
    parser.add_argument(
        "--features", nargs="+", choices=costmodel.FEATURES, default=FITTED_FEATURES, help="fit these features (default: all)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    lut = build_estimated_table(args.out, features=args.features)
    prov = lut.meta["provenance"]
    print(f"wrote {args.out}: {len(lut.entries)} entries in {time.perf_counter() - started:.0f} s")
    print(f"fitted features: {', '.join(prov['fitted_features'])}")
    model = prov["cost_model"]
    for name, value in model["coefficients"].items():
        print(f"  {name:18s} {value:12.6g} {costmodel.UNITS[name]}")
    print(f"  {'fixed_ms':18s} {model['fixed_ms']:12.6g} ms")
    print(f"{'model':26s} {'family':18s} {'ms':>5s} {'fit':>6s} {'held-out':>8s} {'err%':>6s}")
    for p in prov["points"]:
        name = point_key(p["model"], p["resolution"])
        print(
            f"{name:26s} {p['family']:18s} {p['published_ms']:5.2f} {p['fitted_ms']:6.2f} {p['held_out_ms']:8.2f} "
            f"{p['held_out_error_pct']:6.1f}"
        )
    for c in prov["checks"]:
        print(
            f"check (not fitted) {c['model']}: published {c['published_ms']} ms, "
            f"predicted {c['predicted_ms']:.2f} ({c['error_pct']:+.1f}%)"
        )
    err = prov["error"]

    def figures(m: dict[str, float]) -> str:
        return (
            f"MAPE {m['mape_pct']}%, {m['within_10_pct']}% within +-10%, {m['within_20_pct']}% within +-20%, "
            f"Kendall tau {m['kendall_tau']}"
        )

    print(f"held out by family: {figures(err)}; family mean signed errors {err['family_mean_signed_pct']}")
    print(f"  the same on the points timed on an iPhone 12 itself (not a 12 Pro): {figures(err['iphone12_points'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
