"""How optimistic is the shipped phone table's held-out error? Nested leave-one-family-out.

python bench/bench_phone_selection.py            # about 7 minutes on 2 cores

The shipped iPhone 12 table chooses its feature subset by leave-one-family-out over the same 25
published points whose held-out errors it reports, so those errors are optimistic. Here the whole
procedure is held out: for each family, the subset is chosen by leave-one-family-out on the other
seven families only, fitted on them, and the held-out family predicted. Prints the nested figures
beside the shipped (non-nested) ones, and which subset each outer fold chose.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import latency_lut  # noqa: E402
from latency_lut import costmodel, estimate  # noqa: E402


def main() -> int:
    records, x = estimate.published_points()
    y = np.array([r.ms for r in records])
    families = np.array([r.family for r in records])
    predicted = np.empty_like(y)
    for family in dict.fromkeys(families):
        held = families == family
        use, _ = costmodel.select_features(
            x[~held], y[~held], list(families[~held]), max_group_error_pct=estimate.MAX_FAMILY_ERROR_PCT
        )
        predicted[held] = costmodel.fit_cost_model(x[~held], y[~held], use=use).predict(x[held])
        err = 100 * (predicted[held] / y[held] - 1)
        print(f"{family:18s} chose {', '.join(use):60s} held-out mean signed {err.mean():+6.1f}%", flush=True)
    nested = costmodel.rank_metrics(predicted, y)
    err = 100 * (predicted / y - 1)
    by_family = {f: float(err[families == f].mean()) for f in dict.fromkeys(families)}
    worst = max(by_family, key=lambda f: abs(by_family[f]))
    shipped = latency_lut.load(estimate.DEVICE).meta["provenance"]["error"]
    print(f"\nnested:  {nested}; worst family {worst} {by_family[worst]:+.1f}%")
    print(f"shipped (subset chosen on all families): { ({k: v for k, v in shipped.items() if k != 'how'}) }")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
