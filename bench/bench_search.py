"""Search strategies against the exhaustive Pareto front of an enumerable space.

    python bench/bench_search.py                    # 5 seeds, 500 and 2,000 evaluations, 4 strategies
    python bench/bench_search.py --seeds 2 --trials 500 --strategies evolution,random   # quicker

Every architecture of `efficientformerv2-tiny` (276,480) is scored: parameters and MACs from the
space's cost tables, latency from the device's table, and a deterministic synthetic accuracy
(`nas.testing.SyntheticAccuracy`), so the exhaustive front is exact and every difference between runs
is the strategy's. Each strategy then runs with the same budget; the table gives the hypervolume of
its front after 500 and 2,000 evaluations as a share of the exhaustive front's (mean over seeds, with
min), and the search's own overhead per evaluation (wall time minus the accuracy estimate, in-memory
storage; one SQLite run of evolution shows what storage adds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import latency_lut
import search_spaces
import supernet
from nas.budget import Budget
from nas.estimate import SyntheticAccuracy, enumerate_codes
from nas.pareto import hypervolume, pareto_mask
from nas.search import SpaceProblem as Problem
from nas.search import front, search

STRATEGIES = {
    "evolution": ("evolution", "nsga2"),
    "nsga2": ("optuna", "nsga2"),
    "tpe": ("optuna", "tpe"),
    "random": ("optuna", "random"),
}


class CountingEstimator(SyntheticAccuracy):
    """The synthetic accuracy, timing itself so the search's own overhead can be separated."""

    def __init__(self, space, ripple):
        super().__init__(space, ripple=ripple)
        self.seconds = 0.0

    def estimate(self, archs):
        start = time.perf_counter()
        out = super().estimate(archs)
        self.seconds += time.perf_counter() - start
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="efficientformerv2-tiny")
    parser.add_argument("--device", default="iphone12-coreml")
    parser.add_argument("--budget", default="params=2.5M latency=0.85ms")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--checkpoints", default="500,2000")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument(
        "--ripple",
        type=float,
        default=0.4,
        help="amplitude of the synthetic accuracy's deterministic pseudo-random ripple (0: smooth in capacity)",
    )
    args = parser.parse_args()

    space = search_spaces.load(args.space)
    lut = latency_lut.load(args.device)
    budget = Budget.parse(args.budget.split())
    estimator = SyntheticAccuracy(space, ripple=args.ripple)
    problem = Problem(space, lut, budget, estimator, ("accuracy", "latency", "params"))

    start = time.perf_counter()
    codes = enumerate_codes(space)
    assert len(codes) == space.size(), (len(codes), space.size())
    params = supernet.count_tables(space)["params"].total(codes)[0]
    latency = lut.predict_codes(codes, space)
    accuracy = estimator.scores(codes)
    feasible = (params <= (budget.params or np.inf)) & (latency <= (budget.latency_ms or np.inf))
    entries = [
        {"accuracy": a, "latency_ms": t, "params": p} for a, t, p in zip(accuracy[feasible], latency[feasible], params[feasible])
    ]
    costs = problem.costs(entries)
    mask = pareto_mask(costs)
    exhaustive = hypervolume(costs[mask])
    print(
        f"space {space.name}: {len(codes):,} architectures scored in {time.perf_counter() - start:.1f} s; "
        f"{feasible.sum():,} within {budget}; exhaustive front {mask.sum()} points, hypervolume {exhaustive:.5f}"
    )
    print(f"device {lut.device}; objectives accuracy (synthetic, ripple {args.ripple}), latency, params; {args.seeds} seeds\n")

    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    rows = []
    for name in args.strategies.split(","):
        strategy, sampler = STRATEGIES[name]
        shares = {c: [] for c in checkpoints}
        overheads = []
        for seed in range(args.seeds):
            counting = CountingEstimator(space, args.ripple)
            t0 = time.perf_counter()
            result = search(
                space, budget, lut=lut, estimator=counting, trials=args.trials, seed=seed, strategy=strategy, sampler=sampler
            )
            wall = time.perf_counter() - t0
            for c in checkpoints:
                _, hv = front(result.history[:c], problem.normaliser)
                shares[c].append(hv / exhaustive)
            overheads.append((wall - counting.seconds) / max(1, result.evaluated) * 1000)
            print(
                f"  {name:9s} seed {seed}: "
                + "  ".join(f"{c}: {shares[c][-1]:.4f}" for c in checkpoints)
                + f"  overhead {overheads[-1]:.2f} ms/eval",
                flush=True,
            )
        rows.append((name, shares, overheads))

    print("\nhypervolume share of the exhaustive front (mean over seeds, min in brackets); overhead per evaluation")
    header = f"{'strategy':10s}" + "".join(f"{'@' + str(c):>18s}" for c in checkpoints) + f"{'ms/eval':>10s}"
    print(header)
    for name, shares, overheads in rows:
        cells = "".join(f"{statistics.mean(shares[c]):>11.4f} ({min(shares[c]):.4f})" for c in checkpoints)
        print(f"{name:10s}{cells}{statistics.median(overheads):>10.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        counting = CountingEstimator(space, args.ripple)
        t0 = time.perf_counter()
        result = search(space, budget, lut=lut, estimator=counting, trials=500, seed=0, out=Path(tmp) / "run")
        per = (time.perf_counter() - t0 - counting.seconds) / result.evaluated * 1000
        print(f"\nevolution with SQLite storage (run directory): {per:.2f} ms/eval over {result.evaluated} evaluations")


if __name__ == "__main__":
    main()
