"""How well each accuracy estimator ranks architectures: rank correlation with trained accuracy.

    nas train --data fashion-mnist --epochs 1 --out runs/fmnist-supernet.pt      # the supernet (~minutes)
    python bench/bench_estimators.py --supernet runs/fmnist-supernet.pt --archs 10 --out runs/estimators

Architectures of varied size and mixers are drawn from the supernet's space (its smallest and largest,
and random ones spread over the parameter range with every mixer represented); each is then trained
alone on the supernet's data with one short fixed recipe (`nas train --arch`, the same settings for
all) and its validation top-1 measured. Against that ground truth the script prints Kendall tau and
Spearman of (a) the supernet estimate (weights shared, BatchNorm recalibrated), (b) each training-free
proxy, computed as the search computes it (the same genes in the search space at its input resolution),
(c) the parameter count, and (d) the predictor (fitted on the supernet estimates of other random
architectures, then asked about these), each with the p-value of Kendall's test. To show how much of
the ground truth is signal, the first --noise architectures are trained again with the next seed and
the seed-to-seed difference of their top-1 is printed beside the spread across architectures: when the
two are alike, no estimator can be ranked on this recipe. With --noise equal to --archs the retraining
itself is ranked against the first seed, like an estimator: the most any estimator can reach. Trained checkpoints are kept in --out, so a
rerun (or an interrupted one) trains only what is missing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

import search_spaces
import supernet
from nas.estimate import PROXIES, PredictorEstimator, ProxyEstimator, SupernetEstimator
from nas.train import adapt_arch, evaluate, load_checkpoint, train
from nas.train.data import Loader


def pick_archs(space: search_spaces.Space, n: int, seed: int) -> list[search_spaces.Arch]:
    """The smallest, the largest, and n-2 random architectures evenly spread over the parameter range,
    preferring ones whose mixers are not yet represented."""
    rng = np.random.default_rng(seed)
    pool = [space.sample(rng) for _ in range(40 * n)]
    params = np.array([supernet.count(a).params for a in pool])
    chosen = [space.smallest(), space.largest()]
    edges = np.quantile(params, np.linspace(0, 1, n - 1))
    seen_mixers: set[str] = set()
    for lo, hi in zip(edges[:-1], edges[1:]):
        bucket = [a for a, p in zip(pool, params) if lo <= p <= hi and a not in chosen]
        if not bucket:
            continue
        bucket.sort(key=lambda a: -len({m for stage in a.mixers for m in stage} - seen_mixers))
        chosen.append(bucket[0])
        seen_mixers |= {m for stage in bucket[0].mixers for m in stage}
    return chosen[:n]


def trained_accuracy(
    arch: search_spaces.Arch, ckpt_dir: Path, recipe: dict, data_source: str, seed: int | None = None
) -> tuple[float, float]:
    """Validation top-1 of `arch` trained alone with `recipe` (with another `seed`: a repeat, kept as
    ``seedN-ID.pt``; reusing a finished checkpoint, resuming an interrupted one), and the training time
    in seconds (0 when reused)."""
    seed = recipe["seed"] if seed is None else seed
    path = ckpt_dir / (f"{arch.id}.pt" if seed == recipe["seed"] else f"seed{seed}-{arch.id}.pt")
    seconds = 0.0
    ckpt = load_checkpoint(path) if path.exists() else None
    if ckpt is None or not ckpt.state["complete"]:
        start = time.perf_counter()
        train({**recipe, "seed": seed, "data": data_source, "arch": arch.to_dict()}, path, resume=ckpt is not None)
        seconds = time.perf_counter() - start
        ckpt = load_checkpoint(path)
    data = ckpt.data()
    val = Loader(data, "val", resolution=arch.resolution, batch_size=256, train=False)
    return evaluate(ckpt.model(), val), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supernet", required=True, help="a supernet checkpoint from nas train")
    parser.add_argument("--archs", type=int, default=10, help="architectures to train alone (default: 10)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the fixed recipe (default: 1)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on the recipe's steps")
    parser.add_argument(
        "--predictor-archs",
        type=int,
        default=60,
        help="random architectures whose supernet estimates fit the predictor (default: 60)",
    )
    parser.add_argument("--search-space", default=None, help="the space the search runs in (default: the supernet's base)")
    parser.add_argument("--out", default="runs/estimators", help="directory for the trained checkpoints and results")
    parser.add_argument(
        "--noise",
        type=int,
        default=3,
        help="architectures trained again with the next seed, for the noise floor (default: 3; "
        "with all of them, that retraining is ranked like an estimator, the ceiling)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ckpt = load_checkpoint(args.supernet)
    space = ckpt.space
    search_space = search_spaces.load(args.search_space or space.base_ref)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    archs = pick_archs(space, args.archs, args.seed)
    recipe = {
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "seed": args.seed,
        "batch_size": ckpt.settings.batch_size,
        "lr": ckpt.settings.lr,
    }
    print(
        f"supernet {args.supernet}: space {space.ref}, data {ckpt.settings.data}; "
        f"{len(archs)} architectures trained alone ({args.epochs} epoch(s), max steps {args.max_steps}, "
        f"batch {recipe['batch_size']}, lr {recipe['lr']})",
        flush=True,
    )

    truth, train_seconds = [], []
    for i, arch in enumerate(archs):
        top1, seconds = trained_accuracy(arch, out, recipe, ckpt.settings.data)
        truth.append(top1)
        train_seconds.append(seconds)
        print(
            f"  [{i + 1}/{len(archs)}] {arch.id}: {supernet.count(arch).params:>9,} params, "
            f"trained top-1 {top1:.2f}%" + (f" ({seconds:.0f} s)" if seconds else " (reused)"),
            flush=True,
        )

    repeats = []
    for arch, first in zip(archs[: args.noise], truth):
        top1, seconds = trained_accuracy(arch, out, recipe, ckpt.settings.data, seed=args.seed + 1)
        repeats.append({"arch_id": arch.id, f"seed{args.seed}": first, f"seed{args.seed + 1}": top1})
        print(
            f"  repeat {arch.id} with seed {args.seed + 1}: {top1:.2f}% (seed {args.seed}: {first:.2f}%)"
            + (f" ({seconds:.0f} s)" if seconds else " (reused)"),
            flush=True,
        )

    estimates: dict[str, list[float]] = {}
    timing: dict[str, float] = {}
    start = time.perf_counter()
    measured = SupernetEstimator(args.supernet, space, seed=args.seed)
    estimates["supernet"] = measured.estimate(archs)
    timing["supernet"] = (time.perf_counter() - start) / len(archs)
    in_search = [adapt_arch(a, search_space, max(search_space.resolutions)) for a in archs]
    for proxy in PROXIES:
        estimator = ProxyEstimator(search_space, proxy, seed=args.seed)
        estimator.estimate(in_search[:1])  # build the network outside the timing
        start = time.perf_counter()
        estimates[f"proxy:{proxy}" if proxy != "params" else "parameter count"] = estimator.estimate(in_search)
        timing[f"proxy:{proxy}" if proxy != "params" else "parameter count"] = (time.perf_counter() - start) / len(archs)
    rng = np.random.default_rng(args.seed + 1)
    study_ids = {a.id for a in archs}
    fit_on = [a for a in (space.sample(rng) for _ in range(4 * args.predictor_archs)) if a.id not in study_ids]
    fit_on = list({a.id: a for a in fit_on}.values())[: args.predictor_archs]
    predictor = PredictorEstimator(measured, space, warmup=min(len(fit_on), 20), seed=args.seed)
    start = time.perf_counter()
    predictor.estimate(fit_on)
    fit_seconds = time.perf_counter() - start
    estimates[f"predictor ({len(fit_on)} supernet estimates)"] = [float(v) for v in predictor.predict(archs)]
    if repeats and len(repeats) == len(archs):
        # the ceiling: how well the same recipe with another seed ranks the architectures
        estimates[f"retrained, seed {args.seed + 1}"] = [r[f"seed{args.seed + 1}"] for r in repeats]

    print(
        f"\nrank correlation with trained top-1 over {len(archs)} architectures "
        f"(trained top-1 {min(truth):.2f} to {max(truth):.2f}%, standard deviation {np.std(truth):.2f})"
    )
    if repeats:
        diffs = [abs(r[f"seed{args.seed}"] - r[f"seed{args.seed + 1}"]) for r in repeats]
        print(
            f"noise floor: the same architecture trained with another seed moved {np.mean(diffs):.2f} points "
            f"on average (at most {max(diffs):.2f}) over {len(repeats)} repeats"
        )
    print(f"{'estimator':40s}{'Kendall tau':>12s}{'p':>7s}{'Spearman':>10s}{'s/arch':>9s}")
    rows = []
    for name, values in estimates.items():
        test = kendalltau(values, truth)
        tau, p, rho = test.statistic, test.pvalue, spearmanr(values, truth).statistic
        rows.append(
            {"estimator": name, "kendall_tau": round(float(tau), 3), "p": round(float(p), 3), "spearman": round(float(rho), 3)}
        )
        cost = timing.get(name)
        cost_text = (
            f"{cost:>9.2f}"
            if cost is not None
            else f"  (fit {fit_seconds:.0f} s)"
            if name.startswith("predictor")
            else "  (a training)"
        )
        print(f"{name:40s}{tau:>12.3f}{p:>7.2f}{rho:>10.3f}{cost_text}")
    (out / "results.json").write_text(
        json.dumps(
            {
                "supernet": args.supernet,
                "recipe": recipe,
                "archs": [a.to_dict() for a in archs],
                "trained_top1": truth,
                "repeats": repeats,
                "estimates": estimates,
                "correlations": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
