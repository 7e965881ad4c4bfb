"""``nas search --budget K=V ...``: run a search; print and save the Pareto front."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from latency_lut.table import provenance_label

from ..budget import Budget, latency_straddle
from ..errors import BadInput
from ..estimate import DEFAULT_KIND, DEFAULT_PROXY, KINDS, PROXIES
from ..mes import parse_mes_options
from ..pareto import DEFAULT_OBJECTIVES, STANDARD_OBJECTIVES, parse_objectives
from ..search import search
from ..search.driver import resumed_settings_of
from ..search.settings import DEFAULT_STUDY, SearchSettings
from ..search.strategies import DEFAULT_STRATEGY, SAMPLERS, STRATEGIES
from ..train.checkpoint import load_checkpoint
from .base import Command, note, print_json, progress_bar, resume_command, si, table

DEFAULTS = SearchSettings()


class SearchCommand(Command):
    name = "search"
    help = "search for the Pareto-optimal architectures under a budget"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--budget", nargs="+", metavar="K=V", help="params=3M latency=1ms macs=400M mes=50 (AND of all)")
        p.add_argument("--space", default=None, help=f"search space (default: {DEFAULTS.space})")
        p.add_argument("--device", default=None, help="latency table (default: the shipped default device; see nas lut list)")
        p.add_argument("--strategy", default=None, choices=tuple(STRATEGIES), help=f"(default: {DEFAULT_STRATEGY})")
        p.add_argument(
            "--sampler",
            default=None,
            choices=SAMPLERS,
            help=f"Optuna sampler for --strategy optuna (default: {DEFAULTS.sampler})",
        )
        p.add_argument(
            "--trials",
            type=int,
            default=None,
            help="evaluations in total, over resumes (default: "
            + ", ".join(f"{name} {cls.default_trials or 'until the budget holds'}" for name, cls in STRATEGIES.items())
            + ")",
        )
        p.add_argument(
            "--accuracy", default=None, choices=KINDS, help=f"accuracy estimator (default: {DEFAULT_KIND}, training-free)"
        )
        p.add_argument("--proxy", default=None, choices=PROXIES, help=f"which training-free proxy (default: {DEFAULT_PROXY})")
        p.add_argument("--supernet", default=None, metavar="CKPT", help="trained supernet checkpoint (--accuracy supernet)")
        p.add_argument(
            "--data",
            default=None,
            metavar="SRC",
            help="validation data for --accuracy supernet; real images for the naswot and zico proxies (default: noise)",
        )
        p.add_argument(
            "--objectives",
            default=None,
            help=f"Pareto objectives (default: {','.join(DEFAULT_OBJECTIVES)}, without params under --proxy params; "
            f"any of {', '.join(STANDARD_OBJECTIVES)})",
        )
        p.add_argument("--mes-alpha", default=None, help="MES exponents, e.g. latency=1,params=0.5")
        p.add_argument("--mes-unit", default=None, help="MES units, e.g. latency=1ms,params=3M")
        p.add_argument(
            "--population", type=int, default=None, help=f"population of evolution / NSGA (default: {DEFAULTS.population})"
        )
        p.add_argument("--seed", type=int, default=None, help=f"random seed (default: {DEFAULTS.seed}); same seed, same front")
        p.add_argument("--out", default=None, metavar="RUN_DIR", help="run directory (default: runs/search-DATE-TIME)")
        p.add_argument(
            "--storage",
            default=None,
            metavar="URL",
            help="Optuna RDB URL (default: sqlite in RUN_DIR); workers given the same URL and --study share one study",
        )
        p.add_argument("--study", default=None, help=f"study name in the storage (default: {DEFAULT_STUDY})")
        p.add_argument("--resume", action="store_true", help="continue the run in --out to its --trials total")
        p.add_argument(
            "--ray",
            nargs="?",
            const=True,
            default=None,
            metavar="ADDRESS",
            help="run evaluations as Ray Tune trials (no address: a local Ray instance on loopback)",
        )

    def resume_hint(self, args: argparse.Namespace, argv: list[str]) -> str | None:
        return _search_resume_hint(args, argv)

    def run(self, args: argparse.Namespace) -> int:
        given: dict[str, Any] = {
            "space": args.space,
            "budget": Budget.parse(args.budget) if args.budget else None,
            "device": args.device,
            "strategy": args.strategy,
            "sampler": args.sampler,
            "accuracy": args.accuracy,
            "proxy": args.proxy,
            "objectives": parse_objectives(args.objectives) if args.objectives is not None else None,
            "seed": args.seed,
            "population": args.population,
            "storage": args.storage,
            "study": args.study,
            "supernet": args.supernet,
            "data": args.data,
            "trials": args.trials,
        }
        alpha, unit = parse_mes_options(args.mes_alpha, args.mes_unit)
        given.update(mes_alpha=alpha or None, mes_unit=unit or None)
        if args.resume:
            if not args.out:
                raise BadInput("--resume needs --out RUN_DIR (the run to continue)")
            settings = resumed_settings_of(args.out, given)
        else:
            if given["budget"] is None:
                raise BadInput("--budget is required, e.g. --budget params=3M latency=1ms")
            if given["supernet"] and not given["space"]:  # the natural next step after nas train
                given["space"] = load_checkpoint(given["supernet"]).space.base_ref
                note(f"searching space {given['space']}, the one the --supernet checkpoint was trained on (see --space)")
            settings = SearchSettings(**{k: v for k, v in given.items() if v is not None})
        args.out = args.out or _default_run_dir()
        with progress_bar(args, "eval") as bar:
            result = search(
                settings.space,
                settings=settings,
                out=args.out,
                resume=args.resume,
                ray=args.ray,
                progress=bar,
                command=" ".join(["nas"] + sys.argv[1:]),
            )
        if args.json:
            print_json(result.to_dict())
            return 0
        print_front(result, result.notes)
        storage = settings.storage or f"{result.run}/study.db"
        print(
            f"files: {result.run}/pareto.json, {result.run}/run.yaml; trials in {storage} "
            f"(optuna-dashboard {storage if '://' in storage else 'sqlite:///' + storage})"
        )
        return 0


def _search_resume_hint(args: argparse.Namespace, argv: list[str]) -> str | None:
    return resume_command(argv, out=args.out) if getattr(args, "out", None) else None


def _default_run_dir() -> str:
    return str(Path("runs") / datetime.now().strftime("search-%Y%m%d-%H%M%S"))


def print_front(result: Any, notes: list[str] | None = None) -> None:
    """A run's front as a table, with its device, budget, counts and hypervolume."""
    error = result.latency_error_pct
    kind = provenance_label(result.device_provenance) or "measured"
    estimated = f" ({kind} latencies" + (f", typical error ±{error:g}%)" if error else ")")
    shown = {
        "params": lambda v: f"params<={v:,.0f}",
        "macs": lambda v: f"macs<={si(v)}",
        "latency_ms": lambda v: f"latency<={v:g} ms",
        "mes": lambda v: f"mes>={v:g}",
    }
    budget = ", ".join(shown[k](v) for k, v in result.budget.items()) or "none"
    print(f"run {result.run or '(in memory)'}: strategy {result.strategy}, device {result.device}{estimated}, budget {budget}")
    print(
        f"evaluated {result.evaluated}, feasible {result.feasible}, Pareto front {len(result.pareto)} "
        f"over {','.join(result.objectives)}, hypervolume {result.hypervolume:.4f}"
    )
    rows = [
        [
            e["id"],
            f"{e['params']:,}",
            si(e["macs"]),
            f"{e['latency_ms']:.3f}" + (f" ±{e['latency_error_ms']:.2f}" if e.get("latency_error_ms") is not None else ""),
            f"{e['mes']:.1f}",
            "-" if e["accuracy"] is None else f"{e['accuracy']:.4g}",
            e["accuracy_source"] or "-",
        ]
        for e in result.pareto
    ]
    if rows:
        print(table(rows, ["id", "params", "MACs", "latency ms", "MES", f"accuracy ({result.accuracy_unit})", "source"]))
    straddle = latency_straddle([e["latency_ms"] for e in result.pareto], result.budget.get("latency_ms"), error)
    for line in [*(notes or []), *([straddle] if straddle else [])]:
        print(f"note: {line}")


__all__ = ["SearchCommand", "print_front"]
