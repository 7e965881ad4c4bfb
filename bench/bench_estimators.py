"""How well each accuracy estimator ranks architectures: rank agreement with the accuracy study's
ground truth (``bench/accuracy_study.py``; docs/accuracy-study.md).

    python bench/bench_estimators.py --archs 24
    python bench/bench_estimators.py --supernet runs/accuracy-study/fm60k-e1-64/supernets/kl-e1-seed0.pt   # + supernet, predictor

The truth is each architecture's top-1 averaged over the seeds it was trained with (only architectures
trained with every seed of --seeds count). For every estimator the script prints Kendall tau and
Spearman with bootstrap 95% intervals, Kendall's p-value, the recall of the truth's best quarter and the
cost per architecture, beside the ceiling (one seed's trained top-1 ranking the other's): what no
estimator can beat on this recipe. Proxies see the architectures as they were trained (the study's
space at its resolution, proxies at that full resolution); naswot and zico are computed both on the
recipe's training images and on Gaussian noise. It then prints every estimator's tau minus parameter
count's with its paired bootstrap interval and applies the rule that picks the default of ``nas search``
(``nas.estimate.default_by_evidence``): the training-free estimator with the highest tau of those that
beat parameter count in that paired test. Results go to ``bench/results/accuracy_study/estimators-RECIPE.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from study_args import RESULTS, add_study_arguments, complete_truth, difference_text

from nas.estimate import (
    DATA_PROXIES,
    PROXIES,
    PredictorEstimator,
    ProxyEstimator,
    SupernetEstimator,
    default_by_evidence,
    rank_agreement,
    versus_baseline,
)


def training_free(recipe, space, seed: int) -> dict[str, ProxyEstimator]:
    """Every proxy as the search would build it, on this space at full resolution; the data proxies twice."""
    out = {}
    for proxy in PROXIES:
        out[f"proxy:{proxy}" + ("@noise" if proxy in DATA_PROXIES else "")] = ProxyEstimator(
            space, proxy, seed=seed, resolution_divisor=1
        )
        if proxy in DATA_PROXIES:
            out[f"proxy:{proxy}@data"] = ProxyEstimator(space, proxy, seed=seed, resolution_divisor=1, data=recipe.data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_study_arguments(parser)
    parser.add_argument("--supernet", default=None, help="a supernet trained on the study's space and data (nas train)")
    parser.add_argument("--predictor-archs", type=int, default=60, help="supernet estimates the predictor is fitted on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    recipe, archs, per_seed = complete_truth(args)
    if len(archs) < 4:
        raise SystemExit(f"{len(archs)} architectures trained with every seed of {args.seeds}: too few to rank (at least 4)")
    truth = per_seed.mean(axis=0)
    space = recipe.study_space()
    print(
        f"recipe {recipe.name}: {len(archs)} architectures, top-1 {truth.min():.2f} to {truth.max():.2f}% "
        f"(sd {truth.std():.2f}), mean of seeds {args.seeds}",
        flush=True,
    )

    estimates: dict[str, list[float]] = {}
    cost: dict[str, float] = {}
    for name, estimator in training_free(recipe, space, args.seed).items():
        estimator.prepare(archs)  # network and batches built outside the timing
        start = time.perf_counter()
        estimates[name] = estimator.estimate(archs)
        cost[name] = (time.perf_counter() - start) / len(archs)
    if args.supernet:
        measured = SupernetEstimator(args.supernet, space, seed=args.seed)
        start = time.perf_counter()
        estimates["supernet"] = measured.estimate(archs)
        cost["supernet"] = (time.perf_counter() - start) / len(archs)
        rng = np.random.default_rng(args.seed + 1)
        ids = {a.id for a in archs}
        fit_on = list({a.id: a for a in (space.sample(rng) for _ in range(4 * args.predictor_archs)) if a.id not in ids}.values())
        predictor = PredictorEstimator(measured, space, warmup=min(20, args.predictor_archs), seed=args.seed)
        predictor.estimate(fit_on[: args.predictor_archs])
        estimates["predictor"] = [float(v) for v in predictor.predict(archs)]
    ceiling = None
    if len(args.seeds) >= 2:
        ceiling = rank_agreement(per_seed[1], per_seed[0], seed=args.seed).to_dict()

    rows = {name: rank_agreement(values, truth, seed=args.seed).to_dict() for name, values in estimates.items()}
    print(f"\n{'estimator':24s}{'Kendall tau [95% CI]':>24s}{'p':>8s}{'Spearman [95% CI]':>22s}{'top-25%':>9s}{'s/arch':>8s}")

    def line(name: str, r: dict, cost_text: str) -> None:
        print(
            f"{name:24s}{r['kendall_tau']:>8.3f} [{r['kendall_low']:>5.2f}, {r['kendall_high']:>5.2f}]"
            f"{r['kendall_p']:>8.3f}{r['spearman']:>8.3f} [{r['spearman_low']:>5.2f}, {r['spearman_high']:>5.2f}]"
            f"{r['top_recall']:>9.2f}{cost_text:>8s}"
        )

    if ceiling:
        line(f"ceiling (seed {args.seeds[1]} vs {args.seeds[0]})", ceiling, "train")
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["kendall_tau"]):
        line(name, r, f"{cost[name]:.2f}" if name in cost else "fit")
    differences = versus_baseline(estimates, truth, seed=args.seed)
    versus_params = {name: d.to_dict() for name, d in differences.items()}
    print("\nKendall tau minus parameter count's, paired bootstrap 95% interval (significant when above 0):")
    for name, d in sorted(differences.items(), key=lambda kv: -kv[1].difference):
        print(f"  {name:22s}{difference_text(d)}" + ("  *" if d.low > 0 else ""))
    training_free_estimates = {name: values for name, values in estimates.items() if name.startswith("proxy:")}
    training_free_differences = {name: d for name, d in differences.items() if name in training_free_estimates}
    default, why = default_by_evidence(training_free_estimates, truth, differences=training_free_differences)
    print(f"\ndefault of nas search by the rule: {default} ({why})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"estimators-{recipe.name}.json"
    out.write_text(
        json.dumps(
            {
                "recipe": recipe.to_dict(),
                "seeds": args.seeds,
                "archs": [a.id for a in archs],
                "truth_top1": [round(float(t), 4) for t in truth],
                "ceiling": ceiling,
                "estimates": estimates,
                "agreement": rows,
                "versus_params": versus_params,
                "seconds_per_arch": cost,
                "default": {"estimator": default, "why": why},
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
