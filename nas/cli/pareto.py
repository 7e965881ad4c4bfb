"""``nas pareto RUN [RUN ...]``: a run's front (also while it runs); several runs compared and plotted."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BadInput
from ..search import compare_runs, run_result
from ..search.plots import AXES, check_plot_path, plot_fronts
from .base import Command, note, print_json, si, table
from .search import print_front


class ParetoCommand(Command):
    name = "pareto"
    help = "show the Pareto front of a finished or running search; compare and plot runs"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "runs",
            nargs="+",
            metavar="RUN",
            help="run directories (several: their fronts compared, with hypervolumes at a common reference point)",
        )
        p.add_argument(
            "--plot",
            metavar="FILE",
            help="also draw the front(s): FILE.png (an image) or FILE.html (interactive, the architecture on hover)",
        )
        p.add_argument("--x", choices=AXES, default=None, help="metric on the plot's x axis (default: latency)")
        p.add_argument("--y", choices=AXES, default=None, help="metric on the plot's y axis (default: accuracy)")

    def run(self, args: argparse.Namespace) -> int:
        plot = None
        if args.plot:
            plot = check_plot_path(args.plot)  # before reading any run
        elif args.x or args.y:
            raise BadInput("--x and --y choose the axes of a plot: add --plot FILE.png or --plot FILE.html")
        x, y = args.x or "latency", args.y or "accuracy"
        if x == y:
            raise BadInput(f"--x and --y are both {x!r}: choose two different metrics")
        results = [run_result(run) for run in args.runs]
        comparison = compare_runs(results) if len(results) > 1 else None
        notes = plot_fronts(results, plot, x=x, y=y) if plot is not None else []
        if args.json:
            if comparison is None:
                print_json(results[0].to_dict())
            else:
                print_json({"runs": [r.to_dict() for r in results], **comparison})
            for line in notes:
                note(line)
            return 0
        for i, result in enumerate(results):
            if i:
                print()
            print_front(result)
        if comparison is not None:
            _print_comparison(results, comparison)
        if plot is not None:
            print(f"plot: {plot}")
        for line in notes:
            print(f"note: {line}")
        return 0


def _print_comparison(results: list[Any], comparison: dict[str, Any]) -> None:
    """The runs side by side, with each front's hypervolume at its own and at the common reference point."""
    shown = {
        "accuracy": lambda v: f"accuracy {v:.4g}",
        "latency_ms": lambda v: f"latency {v:.4g} ms",
        "params": lambda v: f"params {si(v)}",
        "macs": lambda v: f"MACs {si(v)}",
        "mes": lambda v: f"MES {v:.4g}",
    }
    reference = ", ".join(shown[k](v) for k, v in comparison["common_reference"].items())
    print()
    print(f"hypervolume at the common reference point (the worst of the runs' references: {reference})")
    rows = [
        [r.run or "-", r.strategy, str(r.evaluated), str(len(r.pareto)), f"{r.hypervolume:.4f}", f"{hv:.4f}"]
        for r, hv in zip(results, comparison["hypervolumes"])
    ]
    print(table(rows, ["run", "strategy", "evaluated", "front", "hypervolume (own)", "hypervolume (common)"]))


__all__ = ["ParetoCommand"]
