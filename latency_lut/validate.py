"""How good a table is: predicted against measured end-to-end latency of random subnets."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from .build import Progress, measure_archs, recorded_reference
from .table import LUT


def validate(
    lut: LUT, samples: int = 50, seed: int = 1, passes: int = 7, threads: int | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Measure `samples` random subnets of the table's space end to end (interleaved) on this machine,
    with the table's backend and threads, and compare with the table's predictions.

    A table that records reference models (every table ``nas lut build`` writes) is validated in its unit:
    the references are timed in the same passes and each subnet's latency is its ratio to their geometric
    mean times the table's unit latency, so another process slowing the whole machine does not count as
    the table's error. ``raw_mape`` / ``raw_within_10pct`` are the same comparison in this moment's
    milliseconds, and ``reference.speed_now`` says how fast the machine runs now against the build.

    Besides the errors, the report separates a uniform speed change from scatter: `speed_ratio` is the
    median of measured / predicted and `mape_rescaled` the MAPE after scaling every prediction by it. On a
    shared virtual machine the first moves between runs (three validations of one ONNX Runtime table
    here, minutes apart: MAPE 9.6% and 21.6%), while the second and the rank correlations hold.
    """
    rng = random.Random(seed)
    space = lut.space
    archs = [space.sample(rng) for _ in range(samples)]
    predicted = lut.predict_many(archs)
    recorded = recorded_reference(lut.meta.get("provenance", {}))
    references, unit_ms = recorded if recorded is not None else (None, None)
    seconds: dict[str, float] = {}
    measured = np.array(
        measure_archs(
            archs,
            lut.backend,
            threads or lut.threads,
            passes,
            seed,
            progress,
            seconds,
            references=references,
            reference_ms=unit_ms,
        )
    )
    raw = None
    if unit_ms is not None:  # the same timings in this moment's milliseconds
        raw = measured * seconds["reference_ms"] / unit_ms
    error = (predicted - measured) / measured
    speed_ratio = float(np.median(measured / predicted))
    rescaled = (predicted * speed_ratio - measured) / measured
    tau = stats.kendalltau(predicted, measured).statistic
    rho = stats.spearmanr(predicted, measured).statistic
    rows = [
        {"id": a.id, "arch": a.to_dict(), "predicted_ms": float(p), "measured_ms": float(m), "error_pct": float(e * 100)}
        for a, p, m, e in zip(archs, predicted, measured, error)
    ]
    return {
        "device": lut.device,
        "backend": lut.backend,
        "samples": samples,
        "mape": float(np.abs(error).mean()),
        "within_10pct": float((np.abs(error) <= 0.10).mean()),
        "speed_ratio": speed_ratio,
        "mape_rescaled": float(np.abs(rescaled).mean()),
        "kendall_tau": float(tau),
        "spearman": float(rho),
        "host_notice": lut.host_notice(),
        **(
            {
                "reference": {
                    "table_ms": unit_ms,
                    "now_ms": seconds["reference_ms"],
                    "speed_now": unit_ms / seconds["reference_ms"],
                },
                "raw_mape": float(np.abs((predicted - raw) / raw).mean()),
                "raw_within_10pct": float((np.abs((predicted - raw) / raw) <= 0.10).mean()),
            }
            if raw is not None
            else {}
        ),
        "rows": rows,
        "worst": sorted(rows, key=lambda r: -abs(r["error_pct"]))[:5],
    }


def plot_validation(report: dict[str, Any], path: str | Path) -> Path:
    """Scatter of predicted against measured latency with the y = x line and the +-10% band (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = np.array([r["measured_ms"] for r in report["rows"]])
    predicted = np.array([r["predicted_ms"] for r in report["rows"]])
    lo, hi = min(measured.min(), predicted.min()) * 0.9, max(measured.max(), predicted.max()) * 1.1
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=120)
    line = np.array([lo, hi])
    ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green", alpha=0.15, label="within ±10%")
    ax.plot(line, line, color="tab:green", lw=1)
    ax.scatter(measured, predicted, s=18, color="tab:blue", zorder=3)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_title(
        f"{report['device']} ({report['backend']}), {report['samples']} random subnets\n"
        f"MAPE {report['mape'] * 100:.1f}%, within ±10% {report['within_10pct'] * 100:.0f}%, "
        f"Kendall τ {report['kendall_tau']:.3f}",
        fontsize=9,
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
