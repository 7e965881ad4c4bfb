"""A per-layer table against tables fitted to a few whole-model timings, on this CPU, in one run.

python bench/bench_lut_fit.py                      # ONNX Runtime, 1 thread, default space (~10 min alone)
python bench/bench_lut_fit.py --space efficientformerv2-tiny --fits 10 20 --validate 30   # quicker
python bench/bench_lut_fit.py --rescore bench/results/lut_fit_onnxruntime.json   # today's features, no measuring

In order: the fitted tables (each from its own N chosen whole models, timed interleaved), then the full
per-layer build (every layer key timed, calibrated on 16 subnets), then one interleaved measurement of
the same held-out random subnets that every table predicts. Every table keeps its timings relative to
the space's reference model (timed in every pass), and the held-out subnets are timed with it too, so
each table is scored in its own unit (`nas lut validate`'s protocol): a uniform change of the machine's
speed between building and validating cancels. Besides the shipped fit (every feature), each fitted
table's own timings are refitted the previous way (the subset of at most five features with the lowest
5-fold cross-validated error) and with attention tied to the weight-matrix products (as the phone table
is), and scored on the same held-out timings: no extra measuring. Prints, per table: share within
+-10%, MAPE, Kendall tau, the speed ratio in raw milliseconds and its measuring time, whole and split
into preparing (export, session set-up: on a phone done on the host) and timing (what occupies the
device), each with its share of the per-layer build's; writes the report as JSON with --out, with every
timing (fit points, held-out architectures and their ratios to the reference) so that other fits can
be scored later without measuring.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import latency_lut  # noqa: E402
import search_spaces  # noqa: E402
from latency_lut import costmodel  # noqa: E402
from latency_lut.build import TIME_PHASES, measure_archs, recorded_reference, reference_archs  # noqa: E402
from latency_lut.fitting import CV_FOLDS, _fit, build_fitted, choose_models  # noqa: E402
from latency_lut.host import host_description  # noqa: E402

#: Refits of a fitted table's own timings scored beside it: (suffix, fit options; "choose": the subset
#: chosen by cross-validation among those of at most min(5, (N - 2) // 2) features, the previous method).
REFITS = (
    ("subset chosen by CV", {"choose": True}),
    ("every feature, attention tied", {"tied": {"attention_gmacs": "linear_gmacs"}}),
)


def scores(predicted: np.ndarray, measured: np.ndarray, raw: np.ndarray) -> dict[str, float]:
    """Errors against `measured` (in the table's unit), and the speed ratio against `raw` milliseconds."""
    err = predicted / measured - 1
    return {
        "within_10_pct": round(float(np.mean(np.abs(err) <= 0.10) * 100), 1),
        "mape_pct": round(float(np.mean(np.abs(err)) * 100), 2),
        "kendall_tau": round(float(stats.kendalltau(predicted, measured).statistic), 3),
        "speed_ratio": round(float(np.median(raw / predicted)), 3),
    }


def refit(lut: latency_lut.LUT, held_out_features: np.ndarray, choose: bool = False, **options) -> tuple[np.ndarray, dict]:
    """A fitted table's own timings refitted another way: predictions for the held-out subnets and the
    refit's 5-fold cross-validated error on those timings (for a chosen subset, the chosen one's:
    optimistic, since the choice saw it)."""
    points = lut.meta["provenance"]["points"]
    x = np.array([costmodel.arch_features(search_spaces.Arch.from_dict(p["arch"])) for p in points])
    y = np.array([p["measured_ms"] for p in points])
    folds = [str(i % CV_FOLDS) for i in range(len(y))]
    if choose:
        most = max(1, min(5, (len(y) - 2) // 2))
        candidates = [c for k in range(1, most + 1) for c in itertools.combinations(costmodel.FEATURES, k)]
        options["use"], records = costmodel.select_features(x, y, folds, candidates=candidates, max_group_error_pct=np.inf)
        cv = {k: v for k, v in records[0].items() if k not in ("features", "worst_group", "worst_group_pct")}
    else:
        cv = costmodel.leave_group_out(x, y, folds, **options)["metrics"]
    model = costmodel.fit_cost_model(x, y, **options)
    return model.predict(held_out_features), {"how": "5-fold cross-validation of the refit", **cv}


def table_unit(lut: latency_lut.LUT, references: list[search_spaces.Arch], backend: str, threads: int) -> float | None:
    """The unit's latency a table's entries are relative to, when its references are this run's on this
    run's backend and threads (else None: the table is scored in the moment's milliseconds)."""
    recorded = recorded_reference(lut.meta["provenance"])
    if recorded is None or (lut.backend, lut.threads) != (backend, threads):
        return None
    if [a.id for a in recorded[0]] != [a.id for a in references]:
        return None
    return recorded[1]


def rescore(path: Path) -> int:
    """Refit every fitted table of a report from its stored timings with today's cost model and score it on the
    report's stored held-out timings: what a change of the features does to the fits, without measuring."""
    report = json.loads(path.read_text())
    held_out = [search_spaces.Arch.from_dict(h["arch"]) for h in report["held_out_timings"]]
    ratios = np.array([h["ratio"] for h in report["held_out_timings"]])
    raw = ratios * report["reference"]["ms_at_validation"]
    held_out_features = np.array([costmodel.arch_features(a) for a in held_out])
    print(f"{path}: {report['host']}; {report['backend']}, {len(held_out)} held-out subnets; features {costmodel.FEATURES}")
    print(f"{'table':12s} {'within10%':>9s} {'MAPE%':>7s} {'tau':>6s} {'CV MAPE%':>9s}   as reported: within10% MAPE% tau")
    for name, fit in report["fit_points"].items():
        x = np.array([costmodel.arch_features(search_spaces.Arch.from_dict(p["arch"])) for p in fit["points"]])
        y = np.array([p["measured_ms"] for p in fit["points"]])
        same_unit = fit["reference"] and fit["reference"]["archs"] == report["reference"]["archs"]
        measured = ratios * fit["reference"]["ms"] if same_unit else raw
        model, cv = _fit(x, y)  # what `nas lut fit` does
        row = scores(model.predict(held_out_features), measured, raw)
        was = report["tables"][name]
        print(
            f"{name:12s} {row['within_10_pct']:9.1f} {row['mape_pct']:7.2f} {row['kendall_tau']:6.3f} {cv['mape_pct']:9.2f}"
            f"   {was['within_10_pct']:9.1f} {was['mape_pct']:5.2f} {was['kendall_tau']:5.3f}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="efficientformerv2")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--fits", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--validate", type=int, default=50, help="held-out random subnets (default: %(default)s)")
    parser.add_argument("--skip-per-layer", action="store_true", help="only the fitted tables")
    parser.add_argument("--shipped", nargs="*", default=[], help="shipped tables to validate beside (e.g. ci-cpu-torch)")
    parser.add_argument("--out", type=Path, help="write the report here (JSON)")
    parser.add_argument(
        "--rescore", type=Path, metavar="REPORT", help="refit a report's fits with today's features, no measuring"
    )
    args = parser.parse_args()
    if args.rescore:
        return rescore(args.rescore)
    space = search_spaces.load(args.space)
    tables: dict[str, latency_lut.LUT] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.fits:
            started = time.perf_counter()
            tables[f"fit {n}"] = build_fitted(
                space, f"fit-{n}", args.backend, Path(tmp) / f"fit{n}.json", n=n, threads=args.threads, passes=args.passes
            )
            seconds[f"fit {n}"] = time.perf_counter() - started
            print(f"fit {n}: built in {seconds[f'fit {n}']:.0f} s", flush=True)
        if not args.skip_per_layer:
            started = time.perf_counter()
            tables["per-layer"] = latency_lut.build_lut(
                space, "per-layer", args.backend, Path(tmp) / "per-layer.json", threads=args.threads, passes=args.passes
            )
            seconds["per-layer"] = time.perf_counter() - started
            print(f"per-layer: built in {seconds['per-layer']:.0f} s", flush=True)
    for name in args.shipped:
        tables[name] = latency_lut.load(name)
    chosen = {a.id for n in args.fits for a in choose_models(space, n)}
    rng = random.Random(12345)
    held_out: list = []
    while len(held_out) < args.validate:
        arch = space.sample(rng)
        if arch.id not in chosen and arch.id not in {a.id for a in held_out}:
            held_out.append(arch)
    started = time.perf_counter()
    references = reference_archs(space)
    timing: dict[str, float] = {}
    ratios = np.array(
        measure_archs(
            held_out, args.backend, args.threads, args.passes, seed=99, seconds=timing, references=references, reference_ms=1.0
        )
    )
    raw = ratios * timing["reference_ms"]
    validate_s = time.perf_counter() - started
    held_out_features = np.array([costmodel.arch_features(a) for a in held_out])
    report = {
        "host": host_description(),
        "space": space.name,
        "backend": args.backend,
        "threads": args.threads,
        "held_out": len(held_out),
        "validation_measuring_s": round(validate_s, 1),
        "reference": {"archs": [a.to_dict() for a in references], "ms_at_validation": round(timing["reference_ms"], 6)},
        "held_out_timings": [{"arch": a.to_dict(), "ratio": round(float(r), 6)} for a, r in zip(held_out, ratios)],
        "tables": {},
        "fit_points": {},
    }
    base = seconds.get("per-layer")
    base_timing = tables["per-layer"].meta["provenance"].get("timing_s") if "per-layer" in tables else None
    print(f"\n{report['host']}; {args.backend}, {args.threads} thread(s); {len(held_out)} held-out subnets of {space.name}")
    print(
        f"{'table':40s} {'within10%':>9s} {'MAPE%':>7s} {'tau':>6s} {'speed':>6s} {'measuring s':>11s} {'share':>7s} "
        f"{'timing s':>8s} {'share':>7s}"
    )
    rows: dict[str, tuple[np.ndarray, latency_lut.LUT, dict | None]] = {}
    for name, lut in tables.items():
        rows[name] = (lut.predict_many(held_out), lut, lut.meta["provenance"].get("error"))
        if lut.meta["provenance"].get("kind") == "fitted":
            report["fit_points"][name] = {
                "reference": lut.meta["provenance"].get("reference"),
                "points": lut.meta["provenance"]["points"],
            }
            for suffix, options in REFITS:
                predicted, cv = refit(lut, held_out_features, **options)
                rows[f"{name} ({suffix})"] = (predicted, lut, cv)
    for name, (predicted, lut, cv) in rows.items():
        unit = table_unit(lut, references, args.backend, args.threads)
        row = scores(predicted, raw if unit is None else ratios * unit, raw)
        spent = seconds.get(name)
        phases = {key: lut.meta["provenance"].get(key) if spent is not None else None for key in TIME_PHASES}
        row.update(measuring_s=None if spent is None else round(spent, 1), **phases, cv_error=cv, unit_ms=unit)
        report["tables"][name] = row
        share = f"{100 * spent / base:.1f}%" if base and spent else "-"
        timing = phases["timing_s"]
        timing_share = f"{100 * timing / base_timing:.1f}%" if base_timing and timing else "-"
        print(
            f"{name:40s} {row['within_10_pct']:9.1f} {row['mape_pct']:7.2f} {row['kendall_tau']:6.3f} "
            f"{row['speed_ratio']:6.3f} {'-' if spent is None else f'{spent:.0f}':>11s} {share:>7s} "
            f"{'-' if timing is None else f'{timing:.0f}':>8s} {timing_share:>7s}"
        )
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
