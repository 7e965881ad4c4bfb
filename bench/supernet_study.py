"""Supernets trained on the accuracy study's space and data, ranked against its trained ground truth.

    python bench/supernet_study.py train --supernets kl-e1 alpha-e1 --calib 8 64
    python bench/supernet_study.py status

``train`` trains each named supernet recipe (``nas.train.study.SUPERNET_RECIPES``: the baseline and one
lever each, e.g. alpha-divergence distillation or bounded sampling) on the study recipe's data, with
checkpoints under ``runs/accuracy-study/`` (an interrupted training resumes), then scores the study's
architectures with BatchNorm recalibrated on each ``--calib`` number of batches, scoring only those
not held yet. Scores go to ``bench/results/accuracy_study/supernets.jsonl`` (commit it). ``status``
prints, for every supernet and calibration, the rank agreement with the truth (the mean top-1 over
the study's seeds, on the architectures both hold) beside the seed-to-seed ceiling, and the cost; then,
where ``bench/bench_estimators.py`` has ranked the proxies on the same architectures, each supernet's
tau minus parameter count's and minus the best proxy's, with paired bootstrap 95% intervals; and each
lever's tau minus the baseline supernet's (the one pulling no lever) at the same calibration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from study_args import RESULTS, add_study_arguments, complete_truth, difference_text, run_command, selected

from nas.estimate.ranking import TauDifference, rank_agreement, versus_baseline
from nas.train.study import SUPERNET_RECIPES, SupernetRecipe, SupernetScores, SupernetStudy, score_supernet


def cmd_train(args: argparse.Namespace) -> None:
    recipe, archs, _ = selected(args)
    study = SupernetStudy(args.results)
    for name in args.supernets:
        for calib in args.calib:
            print(f"supernet {name} (calibration {calib} batches) on {len(archs)} architectures of {recipe.name}", flush=True)
            scores = score_supernet(study, recipe, SUPERNET_RECIPES[name], args.seed, archs, calib, args.checkpoints, log=print)
            print(f"  trained {scores.train_seconds / 3600:.2f} h, scored {len(scores.top1)} architectures", flush=True)
    cmd_status(args)


def cmd_status(args: argparse.Namespace) -> None:
    recipe, archs, per_seed = complete_truth(args)
    truth = dict(zip((a.id for a in archs), per_seed.mean(axis=0)))
    print(f"\nrecipe {recipe.name}: truth on {len(truth)} architectures (mean top-1 of seeds {args.seeds})")
    print(
        f"{'supernet':14s}{'calib':>6s}{'archs':>6s}{'Kendall tau [95% CI]':>24s}{'p':>8s}{'Spearman':>9s}"
        f"{'top-25%':>8s}{'est. range %':>14s}{'train h':>8s}{'s/arch':>7s}"
    )
    if len(truth) >= 4 and len(args.seeds) >= 2:
        ceiling = rank_agreement(per_seed[1], per_seed[0], seed=0)
        print(
            f"{'ceiling':14s}{'':>6s}{len(truth):>6d}{ceiling.kendall_tau:>8.3f} [{ceiling.kendall_low:>5.2f}, "
            f"{ceiling.kendall_high:>5.2f}]{ceiling.kendall_p:>8.3f}{ceiling.spearman:>9.3f}{ceiling.top_recall:>8.2f}"
        )
    lines = [scores for scores in SupernetStudy(args.results).results.values() if scores.recipe == recipe.name]
    for scores in lines:
        ids = [i for i in truth if i in scores.top1]
        if len(ids) < 4:
            print(f"{scores.supernet:14s}{scores.calib_batches:>6d}{len(ids):>6d}  too few architectures in the truth")
            continue
        estimate = np.array([scores.top1[i] for i in ids])
        r = rank_agreement(estimate, np.array([truth[i] for i in ids]), seed=0)
        print(
            f"{scores.supernet:14s}{scores.calib_batches:>6d}{len(ids):>6d}{r.kendall_tau:>8.3f} [{r.kendall_low:>5.2f}, "
            f"{r.kendall_high:>5.2f}]{r.kendall_p:>8.3f}{r.spearman:>9.3f}{r.top_recall:>8.2f}"
            f"{f'{estimate.min():.1f}-{estimate.max():.1f}':>14s}{scores.train_seconds / 3600:>8.2f}"
            f"{scores.eval_seconds / len(scores.top1):>7.1f}"
        )
    ids, values = list(truth), np.array(list(truth.values()))
    complete = [scores for scores in lines if all(i in scores.top1 for i in ids)]
    _paired_with_proxies(complete, ids, values, RESULTS / f"estimators-{recipe.name}.json")
    _paired_with_baseline_supernet(complete, ids, values)


def _paired_with_proxies(lines: list[SupernetScores], ids: list[str], truth: np.ndarray, proxies_file: Path) -> None:
    """Each supernet of `lines` (each scoring every one of `ids`) minus parameter count's and minus the
    best proxy's tau, paired over the same resamples of the architectures (what separate intervals
    cannot tell apart at two dozen)."""
    if not lines or not proxies_file.exists():
        return
    ranked = json.loads(proxies_file.read_text())
    if sorted(ranked["archs"]) != sorted(ids):
        print(f"\n{proxies_file.name} ranks other architectures than the truth now holds: rerun bench/bench_estimators.py")
        return
    order = [ranked["archs"].index(i) for i in ids]
    proxies = {name: [values[k] for k in order] for name, values in ranked["estimates"].items() if name.startswith("proxy:")}
    best = max(proxies, key=lambda name: ranked["agreement"][name]["kendall_tau"])
    print("\nKendall tau minus a proxy's, paired bootstrap 95% interval (* when the interval excludes 0):")
    for baseline in dict.fromkeys(("proxy:params", best)):
        estimates = {baseline: proxies[baseline]} | {
            f"{scores.supernet} ({scores.calib_batches})": [scores.top1[i] for i in ids] for scores in lines
        }
        for name, d in versus_baseline(estimates, truth, baseline=baseline, seed=0).items():
            _print_difference(name, baseline, d)


def _baseline_supernet(lines: list[SupernetScores]) -> SupernetScores | None:
    """The supernet that pulls no lever (every setting of SupernetRecipe at its default but the schedule)
    with the shortest schedule, among `lines`."""
    plain = [
        scores
        for scores in lines
        if (recipe := SUPERNET_RECIPES.get(scores.supernet)) is not None
        and recipe == SupernetRecipe(recipe.name, epochs=recipe.epochs)
    ]
    return min(plain, key=lambda scores: SUPERNET_RECIPES[scores.supernet].epochs, default=None)


def _paired_with_baseline_supernet(lines: list[SupernetScores], ids: list[str], truth: np.ndarray) -> None:
    """Each lever's tau minus the baseline supernet's at the same BatchNorm calibration, paired."""
    rows = []
    for calib in sorted({scores.calib_batches for scores in lines}):
        same = [scores for scores in lines if scores.calib_batches == calib]
        baseline = _baseline_supernet(same)
        if baseline is None:
            continue
        estimates = {f"{scores.supernet} ({calib})": [scores.top1[i] for i in ids] for scores in same}
        name = f"{baseline.supernet} ({calib})"
        rows += [(lever, name, d) for lever, d in versus_baseline(estimates, truth, baseline=name, seed=0).items()]
    if rows:
        print("\nKendall tau minus the baseline supernet's at the same calibration, paired bootstrap 95% interval:")
        for lever, name, d in rows:
            _print_difference(lever, name, d)


def _print_difference(name: str, baseline: str, d: TauDifference) -> None:
    """One line of a paired comparison, starred when its interval excludes 0."""
    mark = "  *" if d.low > 0 or d.high < 0 else ""
    print(f"  {name:20s} - {baseline:20s}{difference_text(d)}{mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("train", cmd_train), ("status", cmd_status)):
        p = sub.add_parser(name)
        add_study_arguments(p, checkpoints=name == "train")
        p.add_argument("--results", default=str(RESULTS / "supernets.jsonl"), help="the supernets' scores (default: %(default)s)")
        if name == "train":
            p.add_argument("--supernets", nargs="+", default=["kl-e1"], choices=sorted(SUPERNET_RECIPES))
            p.add_argument("--calib", type=int, nargs="+", default=[8, 64], help="BatchNorm recalibration batches")
            p.add_argument("--seed", type=int, default=0, help="the supernet's training seed")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
