"""The accuracy study's ground truth: architectures trained alone, one fixed recipe, several seeds.

    python bench/accuracy_study.py train --recipe fm5k-e8-64 --archs 8 --seeds 0 1
    python bench/accuracy_study.py status --recipe fm5k-e8-64 --archs 8 --seeds 0 1

``train`` trains what the results file does not hold yet, in the order architecture by architecture
(every seed of one before the next), appending each finished training to
``bench/results/accuracy_study/truth.jsonl`` (commit it: it is the study's data); checkpoints go to
``runs/accuracy-study/`` so an interrupted training resumes. ``status`` prints the table so far: each
architecture's size and top-1 per seed, the spread across architectures and the seed-to-seed Kendall
tau with its bootstrap interval. ``bench/bench_estimators.py`` ranks the estimators on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nas.estimate.ranking import rank_agreement
from nas.train.study import RECIPES, GroundTruth, grow
from nas.train.study import study_archs as archs_of

RESULTS = Path(__file__).parent / "results" / "accuracy_study" / "truth.jsonl"
CHECKPOINTS = Path("runs/accuracy-study")


def study_archs(recipe_name: str, n: int):
    recipe = RECIPES[recipe_name]
    return recipe, archs_of(recipe, n)


def cmd_train(args: argparse.Namespace) -> None:
    recipe, archs = study_archs(args.recipe, args.archs)
    truth = GroundTruth(args.results)
    todo = sum(truth.get(a, recipe.name, s) is None for a in archs for s in args.seeds)
    print(f"recipe {recipe.name}: {len(archs)} architectures x seeds {args.seeds}; {todo} trainings to do", flush=True)

    def report(i: int, total: int, result) -> None:
        print(
            f"  [{i}/{total}] {result.arch.id} seed {result.seed}: {result.params / 1e6:.2f} M params, "
            f"{result.macs / 1e6:.0f} M MACs, top-1 {result.top1:.2f}% ({result.seconds:.0f} s training)",
            flush=True,
        )

    grow(truth, archs, recipe, args.seeds, args.checkpoints, report)
    cmd_status(args)


def cmd_status(args: argparse.Namespace) -> None:
    recipe, archs = study_archs(args.recipe, args.archs)
    truth = GroundTruth(args.results)
    print(f"\nrecipe {recipe.name}: {recipe.to_dict()}")
    print(
        f"{'#':>3s} {'architecture':12s} {'params M':>9s} {'MACs M':>8s} "
        + "".join(f"{'seed ' + str(s):>9s}" for s in args.seeds)
        + f"{'train s':>9s}"
    )
    columns = {s: truth.top1(archs, recipe.name, s) for s in args.seeds}
    if args.markdown:
        print_markdown(truth, archs, recipe.name, args.seeds)
    for i, arch in enumerate(archs):
        rows = [truth.get(arch, recipe.name, s) for s in args.seeds]
        known = [r for r in rows if r is not None]
        size = known[0] if known else None
        print(
            f"{i:>3d} {arch.id:12s} "
            + (f"{size.params / 1e6:>9.2f} {size.macs / 1e6:>8.0f} " if size else f"{'':>9s} {'':>8s} ")
            + "".join(f"{r.top1:>9.2f}" if r else f"{'-':>9s}" for r in rows)
            + (f"{np.mean([r.seconds for r in known]):>9.0f}" if known else "")
        )
    seeds = list(args.seeds)
    if len(seeds) >= 2:
        a, b = columns[seeds[0]], columns[seeds[1]]
        both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        if len(both) >= 4:
            x, y = (np.array(v) for v in zip(*both))
            agreement = rank_agreement(y, x, seed=0)
            print(
                f"\nseed {seeds[0]} vs seed {seeds[1]} over {len(both)} architectures: {agreement.describe()}; "
                f"top-1 {x.min():.2f} to {x.max():.2f}% (sd {x.std():.2f}), seed-to-seed |difference| "
                f"mean {np.abs(x - y).mean():.2f}, max {np.abs(x - y).max():.2f}"
            )
    done = [r for r in truth.results.values() if r.recipe == recipe.name]
    if done:
        print(f"cost: {len(done)} trainings, {sum(r.seconds for r in done) / 3600:.2f} h of training on {done[0].host}")


def print_markdown(truth: GroundTruth, archs, recipe: str, seeds) -> None:
    """The trained architectures as a Markdown table (for docs/accuracy-study.md)."""
    print("| # | architecture | mixers | params | MACs (64 px) | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---" * (5 + len(seeds)) + "|")
    for i, arch in enumerate(archs):
        rows = [truth.get(arch, recipe, s) for s in seeds]
        known = [r for r in rows if r is not None]
        if not known:
            continue
        mixers = ", ".join(sorted({m for stage in arch.mixers for m in stage}))
        print(
            f"| {i} | {arch.id} | {mixers} | {known[0].params / 1e6:.2f} M | {known[0].macs / 1e6:.0f} M | "
            + " | ".join(f"{r.top1:.2f}" if r else "-" for r in rows)
            + " |"
        )
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("train", cmd_train), ("status", cmd_status)):
        p = sub.add_parser(name)
        p.add_argument("--recipe", default="fm5k-e8-64", choices=sorted(RECIPES))
        p.add_argument("--archs", type=int, default=24, help="the first N of the study's architecture order (default: 24)")
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
        p.add_argument("--results", default=str(RESULTS), help="the JSON-lines results file (default: %(default)s)")
        p.add_argument("--checkpoints", default=str(CHECKPOINTS))
        p.add_argument("--markdown", action="store_true", help="also print the trained architectures as a Markdown table")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
