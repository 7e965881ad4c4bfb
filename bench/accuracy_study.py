"""The accuracy study's ground truth: architectures trained alone, one fixed recipe, several seeds.

    python bench/accuracy_study.py train --archs 24 --seeds 0 1
    python bench/accuracy_study.py status --archs 24 --seeds 0 1
    python bench/accuracy_study.py noise --recipe fm5k-e8-64 --archs 24 --rest

``train`` trains what the results file does not hold yet, in the order architecture by architecture
(every seed of one before the next), appending each finished training to
``bench/results/accuracy_study/truth.jsonl`` (commit it: it is the study's data); checkpoints go to
``runs/accuracy-study/`` so an interrupted training resumes. ``status`` prints the table so far: each
architecture's size and top-1 per seed, the spread across architectures and the seed-to-seed Kendall
tau with its bootstrap interval, the seeds' shared offset and the architecture-specific noise. ``noise``
splits that noise, for the architectures whose checkpoints this machine holds, into the test split's
sampling and the training's own variance. ``bench/bench_estimators.py`` ranks the estimators on it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from study_args import add_study_arguments, run_command, selected

from nas.estimate.ranking import rank_agreement
from nas.train.checkpoint import load_checkpoint
from nas.train.data import Loader, load_data
from nas.train.evaluation import correct_predictions
from nas.train.study import GroundTruth, checkpoint_path, grow


def cmd_train(args: argparse.Namespace) -> None:
    recipe, archs, truth = selected(args)
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
    recipe, archs, truth = selected(args)
    print(f"\nrecipe {recipe.name}: {recipe.to_dict()}")
    print(
        f"{'#':>3s} {'architecture':12s} {'params M':>9s} {'MACs M':>8s} "
        + "".join(f"{'seed ' + str(s):>9s}" for s in args.seeds)
        + f"{'train s':>9s}"
    )
    columns = {s: truth.top1(archs, recipe.name, s) for s in args.seeds}
    if getattr(args, "markdown", False):  # `train` prints the status too, without that option
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
            # The seed also fixes data order and augmentation, shared by every architecture: a mean
            # offset between the seeds moves all alike and costs no rank. What ranks worse is the rest.
            diff = x - y
            print(
                f"seed offset {diff.mean():+.2f} (seed {seeds[0]} higher for {int((diff > 0).sum())} of {len(diff)}); "
                f"architecture-specific noise {diff.std(ddof=1) / np.sqrt(2):.2f} points per training against a "
                f"spread of {(x + y).std(ddof=1) / 2:.2f} across architectures (ratio "
                f"{(x + y).std(ddof=1) / 2 / (diff.std(ddof=1) / np.sqrt(2)):.1f})"
            )
    done = [r for r in truth.results.values() if r.recipe == recipe.name]
    if done:
        hosts = "; ".join(sorted({r.host for r in done}))
        print(f"cost: {len(done)} trainings, {sum(r.seconds for r in done) / 3600:.2f} h of training on {hosts}")


def cmd_noise(args: argparse.Namespace) -> None:
    """How much of the seed-to-seed difference is the sampling of the test images: each architecture's
    two trained models (checkpoints this machine holds) evaluated image by image. Over n images (taken
    as independent draws from the population), two equally accurate models that disagree on a share d
    of them differ in top-1 by a paired (McNemar) standard deviation of sqrt(d / n); a larger observed
    spread is the training's own variance, which more test images cannot remove. With --rest the models
    are also scored on the training images the recipe's subset leaves out."""
    recipe, archs, _ = selected(args)
    if len(args.seeds) < 2:
        raise SystemExit("noise compares two seeds' models: give --seeds A B")
    first, second = args.seeds[:2]
    data = load_data(recipe.data, seed=0)
    sets = {"val": data}
    if args.rest:
        if recipe.train_images is None:
            raise SystemExit(f"--rest: recipe {recipe.name} trains on the whole training split; no image is left out")
        sets["rest"] = data.rest(recipe.train_images)
    observed: dict[str, list[float]] = {name: [] for name in sets}
    sampling: dict[str, list[float]] = {name: [] for name in sets}
    print(f"recipe {recipe.name}: seeds {first} and {second}, each architecture's models image by image")
    for arch in archs:
        paths = [checkpoint_path(args.checkpoints, recipe, arch, s) for s in (first, second)]
        checkpoints = [load_checkpoint(p) for p in paths if p.exists()]
        if len(checkpoints) < 2 or not all(c.state["complete"] for c in checkpoints):
            continue
        line = [arch.id]
        for name, split in sets.items():
            loader = Loader(split, "val", resolution=arch.resolution, batch_size=256, train=False)
            a, b = (correct_predictions(c.model(), loader) for c in checkpoints)
            disagreement = (a != b).float().mean().item()
            observed[name].append(100.0 * (a.float().mean() - b.float().mean()).item())
            sampling[name].append(100.0 * (disagreement / len(a)) ** 0.5)
            line.append(
                f"{name} ({len(a)} images): {observed[name][-1]:+.2f}, disagreement {100 * disagreement:.1f}%, "
                f"sampling sd {sampling[name][-1]:.2f}"
            )
        print("  " + " | ".join(line), flush=True)
    for name in sets:
        d, expected = np.array(observed[name]), np.sqrt(np.mean(np.square(sampling[name]))) if sampling[name] else 0.0
        if len(d) < 2 or d.std(ddof=1) == 0:
            continue
        print(
            f"{name}: {len(d)} architectures, seed differences sd {d.std(ddof=1):.2f} points (mean {d.mean():+.2f}); "
            f"the images' sampling alone gives {expected:.2f}, {100 * expected**2 / d.var(ddof=1):.0f}% of the variance "
            "(over 100%: no larger than sampling makes them)"
        )


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("train", cmd_train), ("status", cmd_status), ("noise", cmd_noise)):
        p = sub.add_parser(name)
        add_study_arguments(p, checkpoints=True)
        if name == "status":
            p.add_argument("--markdown", action="store_true", help="also print the trained architectures as a Markdown table")
        if name == "noise":
            p.add_argument("--rest", action="store_true", help="also score on the training images the subset leaves out")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
