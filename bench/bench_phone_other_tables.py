"""Do the iPhone 12 table's relative costs carry over to other phones and toolchains? Each table scored up to its speed.

    pip install --no-deps timm==1.0.31 torchvision==0.28.0 huggingface_hub safetensors
    python bench/bench_phone_other_tables.py       # about two minutes

The shipped ``iphone12-coreml`` table is a cost model fitted to published iPhone 12 timings (iOS 15-16).
Three papers print Core ML timings of many of the same models and of families the fit has never seen on
other setups (``latency_lut.published.OTHER_PHONES``, never fitted): iFormer's on an iPhone 13 with iOS 17.7,
SwiftFormer's on an iPhone 14 with iOS 16, SHViT's on an iPhone 12 with iOS 16.5. A phone's speed differs
from the fit's, so each table is scored after one factor, the median ratio of its published values to the
predictions: mean absolute error, the share within +-20% and Kendall tau (which no factor changes), for all
rows, for the models the fit has seen on the iPhone 12 (at any resolution) and for the others, with each
family's mean signed error. The same for fits with one feature or one featuriser rule off (the options of
``bench_phone_features.py``), to see which carry over to a setup they were not chosen on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_phone_features import RULES_OFF, WITHOUT, option_rows, published_op_logs  # noqa: E402
from bench_phone_selection import worst_family  # noqa: E402

from latency_lut import costmodel, estimate  # noqa: E402
from latency_lut.published import OTHER_PHONES, PublishedLatency  # noqa: E402

#: The fewest rows a subset of a table (the models the fit has seen, the others) is scored on.
MIN_ROWS = 5


def row_features(records: list[PublishedLatency]) -> dict[str, np.ndarray]:
    """Each option's features of `records` (shipped, then each rule of RULES_OFF off), each model built once."""
    import torch
    from featurise_reference_models import build_reference_model

    torch.set_num_threads(1)
    built: dict[str, dict[str, np.ndarray]] = {}
    for record in records:
        if record.key in built:
            continue
        model = build_reference_model(record.model)
        x = torch.zeros(1, 3, record.resolution, record.resolution)
        built[record.key] = {"shipped": costmodel.module_features(model, x), **option_rows(model, x)}
    options = ["shipped", *RULES_OFF]
    return {option: np.array([built[r.key][option] for r in records]) for option in options}


def scored(predicted: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, float]]:
    """The table's speed factor (median published / predicted, in logs) and the metrics after it."""
    factor = float(np.exp(np.median(np.log(y / predicted))))
    return factor, costmodel.rank_metrics(factor * predicted, y)


def main() -> int:
    fitted, x_fitted = estimate.published_points()
    y_fitted = np.array([r.ms for r in fitted])
    _, x_fitted_rule_off = published_op_logs(fitted, logs=False)
    seen_models = {r.model for r in fitted} | {
        r.model.replace("preset:", "efficientformerv2_") for r in fitted if r.model.startswith("preset:")
    }
    rows = list(OTHER_PHONES)
    x_rows = row_features(rows)
    options = ["shipped", *WITHOUT, *RULES_OFF]
    predictions = {}
    for option in options:
        features = [f for f in costmodel.FEATURES if f != WITHOUT.get(option)]
        model = costmodel.fit_cost_model(x_fitted_rule_off.get(option, x_fitted), y_fitted, use=features, tied=estimate.TIED)
        predictions[option] = model.predict(x_rows.get(option, x_rows["shipped"]))
    y = np.array([r.ms for r in rows])
    families = np.array([r.family for r in rows])
    seen = np.array([r.model in seen_models for r in rows])
    tables = np.array([f"{r.paper}, {r.phone}" for r in rows])
    for table in dict.fromkeys(tables):
        keep = tables == table
        print(f"\n{table}: {keep.sum()} rows, {(keep & seen).sum()} of models the fit has seen on the iPhone 12")
        print(
            f"{'option':22s}{'factor':>7s}{'MAPE':>7s}{'<=20%':>7s}{'tau':>7s}  {'seen: MAPE, tau':>16s}  {'unseen: MAPE, tau':>18s}"
        )
        for option in options:
            p = predictions[option]
            factor, m = scored(p[keep], y[keep])
            parts = []
            for part in (keep & seen, keep & ~seen):
                if part.sum() >= MIN_ROWS:
                    pm = costmodel.rank_metrics(factor * p[part], y[part])
                    parts.append(f"{pm['mape_pct']:6.1f}%, {pm['kendall_tau']:5.2f}")
                else:
                    parts.append(f"{'-':>14s}")
            print(
                f"{option:22s}{factor:7.2f}{m['mape_pct']:6.1f}%{m['within_20_pct']:6.0f}%{m['kendall_tau']:7.3f}  "
                f"{parts[0]:>16s}  {parts[1]:>18s}  {worst_family(factor * p[keep], y[keep], families[keep])}"
            )
        factor, _ = scored(predictions["shipped"][keep], y[keep])
        shipped = factor * predictions["shipped"][keep]
        by_family = costmodel.group_mean_signed_pct(shipped, y[keep], families[keep])
        print("shipped, per family (mean signed):", ", ".join(f"{f} {v:+.0f}%" for f, v in by_family.items()))
        misses = [
            f"{r.key} {ms:.2f} ms ({100 * (p / ms - 1):+.0f}%)"
            for r, ms, p in zip(np.array(rows, dtype=object)[keep], y[keep], shipped)
            if abs(p / ms - 1) > 0.3
        ]
        print("shipped, rows beyond +-30%:", "; ".join(misses) or "none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
