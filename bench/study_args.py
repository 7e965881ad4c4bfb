"""What the accuracy-study scripts share: which recipe, how many of its architectures, which seeds and
which ground-truth file, as command-line arguments, and the truth they select.

``bench/accuracy_study.py`` grows the truth, ``bench/bench_estimators.py`` and
``bench/supernet_study.py`` rank estimators against it; all three name the same things the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import supernet
from nas.estimate.ranking import TauDifference
from nas.train import TrainingInterrupted
from nas.train.study import RECIPES, GroundTruth, Recipe, study_archs
from search_spaces import Arch

RESULTS = Path(__file__).parent / "results" / "accuracy_study"
TRUTH = RESULTS / "truth.jsonl"
CHECKPOINTS = Path("runs/accuracy-study")


def add_study_arguments(parser: argparse.ArgumentParser, *, checkpoints: bool = False) -> None:
    """--recipe, --archs, --seeds, --truth and --max-macs (and --checkpoints for the scripts that train
    or read trained models)."""
    parser.add_argument("--recipe", default="fm60k-e1-64", choices=sorted(RECIPES))
    parser.add_argument("--archs", type=int, default=24, help="the first N of the study's architecture order (default: 24)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="the truth's seeds (default: 0 1)")
    parser.add_argument("--truth", default=str(TRUTH), help="the ground truth, JSON lines (default: %(default)s)")
    parser.add_argument(
        "--max-macs",
        type=float,
        default=None,
        help="only those of the selected architectures with at most this many MACs (a cheap pilot of a recipe)",
    )
    if checkpoints:
        parser.add_argument("--checkpoints", default=str(CHECKPOINTS), help="where trainings resume from (default: %(default)s)")


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; Ctrl-C or SIGTERM during a training saves the step under way
    (``nas.train.interrupt``) and ends the script with one line and 130: the same command resumes it."""
    try:
        args.func(args)
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}; the same command resumes it", file=sys.stderr)
        return 130
    return 0


def selected(args: argparse.Namespace) -> tuple[Recipe, list[Arch], GroundTruth]:
    """The recipe, its first --archs architectures (those within --max-macs) and the truth file the
    arguments name."""
    recipe = RECIPES[args.recipe]
    archs = study_archs(recipe, args.archs)
    if args.max_macs is not None:
        archs = [a for a in archs if supernet.count(a).macs <= args.max_macs]
    return recipe, archs, GroundTruth(args.truth)


def complete_truth(args: argparse.Namespace) -> tuple[Recipe, list[Arch], np.ndarray]:
    """The recipe, the selected architectures trained with every seed of --seeds, and their top-1 per
    seed (seeds x architectures)."""
    recipe, archs, truth = selected(args)
    archs, per_seed = truth.complete(archs, recipe.name, args.seeds)
    return recipe, archs, per_seed


def difference_text(d: TauDifference) -> str:
    """A paired tau difference as the study's scripts print it: the difference and its 95% interval."""
    return f"{d.difference:>+8.3f} [{d.low:>+6.2f}, {d.high:>+6.2f}]"
