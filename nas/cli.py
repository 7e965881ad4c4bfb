"""The `nas` command line: a thin layer over search_spaces, supernet and nas (SPEC section 4)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from .errors import BadInput, exit_code_of

DEFAULT_SPACE = "efficientformerv2"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line, `nas: error: ...`, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{message} (see '{self.prog} --help')")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _si(value: float, unit: str = "") -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}{unit}"
    return f"{value:g} {unit}".rstrip()


def _table(rows: list[list[str]], header: list[str]) -> str:
    cells = [header] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- nas spaces ----------------------------------------------------------------------------------
def cmd_spaces(args: argparse.Namespace) -> int:
    import search_spaces

    if args.name:
        space = search_spaces.load(args.name)
        info = space.describe()
        if args.json:
            _print_json(info)
            return 0
        print(f"space {info['name']}  ({info['source']})")
        if info["description"]:
            print(info["description"])
        print(f"architectures: {info['size']:,} ({float(info['size']):.3g})")
        print(f"resolutions: {', '.join(map(str, info['resolutions']))}   classes: {info['num_classes']}"
              f"   distillation head: {'yes' if info['distillation'] else 'no'}")
        rows = [[f"stage{i + 1}", _choices(st["depths"]), _choices(st["widths"]), _choices(st["ratios"]),
                 ", ".join(st["mixers"]), st["downsample"], str(st["mhsa_stride"])]
                for i, st in enumerate(info["stages"])]
        print(_table(rows, ["stage", "depths", "widths", "ratios", "mixers", "entered by", "mhsa stride"]))
        print(f"presets: {', '.join(info['presets']) or 'none'}")
        return 0
    spaces = [search_spaces.load(name) for name in search_spaces.list_spaces()]
    if args.json:
        _print_json([{"name": s.name, "size": s.size(), "resolutions": list(s.resolutions), "presets": s.preset_names,
                      "source": s.source} for s in spaces])
        return 0
    rows = [[s.name, f"{float(s.size()):.3g}", ", ".join(map(str, s.resolutions)), ", ".join(s.preset_names) or "-"]
            for s in spaces]
    print(_table(rows, ["space", "architectures", "resolutions", "presets"]))
    return 0


def _choices(values: list) -> str:
    ints = all(isinstance(v, int) for v in values)
    if ints and len(values) > 3 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


# ---- nas arch show -------------------------------------------------------------------------------
def cmd_arch_show(args: argparse.Namespace) -> int:
    import latency_lut

    from .archref import resolve_arch
    from .evaluate import evaluate, stage_breakdown

    arch = resolve_arch(args.arch, args.space)
    lut, note = None, None
    try:
        lut = latency_lut.load(args.device)
        metrics = evaluate(arch, lut=lut)
    except latency_lut.LUTError as exc:
        if args.device:  # the user named the device: its problems are errors
            raise
        lut, note = None, f"no latency: {exc}"
        import supernet

        counts = supernet.count(arch)
        metrics = {"params": counts.params, "macs": counts.macs}
    stages = stage_breakdown(arch, lut)
    if note:
        print(f"nas: note: {note}", file=sys.stderr)
    if args.json:
        _print_json({"arch": arch.to_dict(), **metrics, "stages": stages})
        return 0
    print(f"architecture {arch.id}  space {arch.search_space.name}  resolution {arch.resolution}")
    print(f"params {metrics['params']:,} ({_si(metrics['params'])})   MACs {metrics['macs']:,} ({_si(metrics['macs'])})")
    if lut is not None:
        threads = f", {lut.threads} thread(s)" if lut.threads else ""
        print(f"latency {metrics['latency_ms']:.3f} ms on {lut.device} ({lut.backend}{threads}, "
              f"{lut.provenance.upper() if lut.provenance == 'estimated' else lut.provenance})   MES {metrics['mes']:.1f}")
    rows = []
    for row in stages:
        mixers = row.get("mixers")
        mixer_text = "-" if mixers is None else " ".join(m if m != "none" else "." for m in mixers)
        ratios = row.get("ratios")
        rows.append([row["stage"], str(row.get("depth", "-")), str(row.get("width", "-")),
                     "-" if ratios is None else " ".join(map(str, ratios)), mixer_text,
                     f"{row['params']:,}", _si(row["macs"])] + ([f"{row['layer_ms']:.3f}"] if lut is not None else []))
    header = ["stage", "depth", "width", "FFN ratios", "mixers (. = none)", "params", "MACs"]
    print(_table(rows, header + (["table ms"] if lut is not None else [])))
    if lut is not None:
        cal = lut.calibration
        print(f"(table ms: the layers' entries; end-to-end = {cal.scale:.3f} x sum + {cal.per_layer_ms:.4f} ms x layers "
              f"+ {cal.offset_ms:.3f} ms)")
    return 0


# ---- nas lut -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _progress(args: argparse.Namespace, unit: str):
    """Yield an update(done, total, what) callback drawing a tqdm bar on stderr when it is a terminal
    (and not -q), or None; the bar is closed however the work ends."""
    if args.quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=0, unit=unit, file=sys.stderr, dynamic_ncols=True)
    state = {"what": None}

    def update(done: int, total: int, what: str) -> None:
        if state["what"] != what:
            state["what"] = what
            bar.reset(total=total)
            bar.set_description(what)
        bar.n = done
        bar.refresh()
    try:
        yield update
    finally:
        bar.close()


def _report(args: argparse.Namespace, info: dict[str, Any], line: str) -> None:
    """The command's result: `info` as JSON with --json, else one line for people."""
    if args.json:
        _print_json(info)
    else:
        print(line)


def cmd_lut_list(args: argparse.Namespace) -> int:
    import latency_lut

    tables = latency_lut.list_luts()
    if args.json:
        _print_json(tables)
        return 0
    rows = [[t["device"] + (" (default)" if t.get("default") else ""), t.get("backend", "?"), t.get("provenance", "?"),
             str(t.get("threads", "?")), str(t.get("entries", "?")), t.get("space", "?"), t.get("date", "?"),
             "shipped" if t["shipped"] else t["path"]] if "error" not in t else
            [t["device"], "-", "-", "-", "-", "-", "-", f"unreadable: {t['error']}"] for t in tables]
    print(_table(rows, ["device", "backend", "provenance", "threads", "entries", "space", "date", "where"]))
    return 0


def cmd_lut_build(args: argparse.Namespace) -> int:
    import latency_lut
    import search_spaces

    space = search_spaces.load(args.space)
    if args.dry_run:
        specs = space.all_layers()
        kinds: dict[str, int] = {}
        for spec in specs:
            kinds[spec.kind] = kinds.get(spec.kind, 0) + 1
        if args.json:
            _print_json({"space": space.name, "entries": len(specs), "by_kind": kinds, "keys": [s.key for s in specs]})
        else:
            print(f"space {space.name}: {len(specs)} layer configurations to measure")
            print(", ".join(f"{k} {v}" for k, v in kinds.items()))
        return 0
    if not args.device:
        raise BadInput("--device NAME is required (the name to give the table)")
    if args.backend not in latency_lut.BACKENDS:
        raise BadInput(f"unknown backend {args.backend!r} (accepted: {', '.join(latency_lut.BACKENDS)})")
    if args.threads < 1 or args.passes < 1:
        raise BadInput("--threads and --passes must be at least 1")
    out = args.out or str(latency_lut.user_dir() / f"{args.device}.json")
    with _progress(args, "item") as progress:
        lut = latency_lut.build_lut(space, args.device, args.backend, out, threads=args.threads, resume=args.resume,
                                    passes=args.passes, calibration_samples=args.calibration_samples, seed=args.seed,
                                    progress=progress, ray_address=args.ray)
    info = {"device": lut.device, "backend": lut.backend, "entries": len(lut.entries), "path": str(lut.path),
            "calibration": {k: v for k, v in lut.calibration.to_dict().items() if k != "details"},
            "calibration_fit_mape": lut.calibration.details.get("fit_mape")}
    _report(args, info, f"wrote {info['path']}: {info['entries']} entries, calibration scale {lut.calibration.scale:.3f}, "
                       f"per layer {lut.calibration.per_layer_ms:.4f} ms, offset {lut.calibration.offset_ms:.3f} ms")
    return 0


def cmd_lut_validate(args: argparse.Namespace) -> int:
    import latency_lut
    from latency_lut.validate import plot_validation, validate

    if args.samples < 3:
        raise BadInput(f"--samples must be at least 3, got {args.samples}")
    lut = latency_lut.load(args.device)
    with _progress(args, "item") as progress:
        report = validate(lut, samples=args.samples, seed=args.seed, passes=args.passes, progress=progress)
    if args.plot:
        plot_validation(report, args.plot)
    if args.json:
        _print_json(report)
        return 0
    print(f"{lut.device} ({lut.backend}, {lut.threads} thread(s)): {report['samples']} random subnets of {lut.space.name}")
    print(f"MAPE {report['mape'] * 100:.2f}%   within ±10%: {report['within_10pct'] * 100:.0f}%   "
          f"Kendall tau {report['kendall_tau']:.3f}   Spearman {report['spearman']:.3f}")
    print("worst cases:")
    rows = [[r["id"], f"{r['predicted_ms']:.3f}", f"{r['measured_ms']:.3f}", f"{r['error_pct']:+.1f}%"] for r in report["worst"]]
    print(_table(rows, ["arch", "predicted ms", "measured ms", "error"]))
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def cmd_lut_export_blocks(args: argparse.Namespace) -> int:
    from latency_lut.phone import export_blocks

    if args.backend != "coreml":
        raise BadInput(f"export-blocks writes Core ML packages: --backend must be coreml, got {args.backend!r}")
    with _progress(args, "package") as progress:
        manifest = export_blocks(args.space, args.out, precision=args.precision, calibration_models=args.calibration_models,
                                 progress=progress)
    info = {"out": args.out, "blocks": len(manifest["blocks"]), "models": len(manifest["models"]),
            "manifest": str(Path(args.out) / "manifest.json")}
    _report(args, info, f"wrote {info['blocks']} layer packages and {info['models']} calibration models to {args.out} "
                       f"(manifest {info['manifest']}); measure them on the device, then 'nas lut import FILE --device NAME'")
    return 0


def cmd_lut_import(args: argparse.Namespace) -> int:
    import latency_lut
    from latency_lut.phone import import_measurements

    if not args.device:
        raise BadInput("--device NAME is required (the name to give the table)")
    out = args.out or str(latency_lut.user_dir() / f"{args.device}.json")
    lut = import_measurements(args.file, args.device, out, space=args.space, backend=args.backend, manifest=args.manifest)
    info = {"device": lut.device, "entries": len(lut.entries), "path": str(lut.path),
            "calibrated_on": lut.calibration.fitted_on}
    _report(args, info, f"wrote {info['path']}: {info['entries']} entries, calibrated on {info['calibrated_on']} whole models")
    return 0


# ---- nas export ----------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from .archref import resolve
    from .export import check_request, export, trained_model

    options = {"state_dict": args.state_dict, "precision": args.precision, "target": args.target,
               "dynamic_batch": args.dynamic_batch}
    check_request(args.format, args.out, with_weights=bool(args.supernet), **options)  # before any long work
    arch, entry = resolve(args.arch, args.space or DEFAULT_SPACE, pick=args.pick)
    model, weights = None, None
    if args.supernet:
        arch, model = trained_model(arch, args.supernet, args.space)
        weights = f"supernet checkpoint {args.supernet}"
    info = export(arch, args.format, args.out, model=model, entry=entry, weights=weights,
                  progress=not args.quiet and sys.stderr.isatty(), **options)
    extra = [f"from {info['source']}"] if info.get("source") else []
    if args.format != "yaml" and not args.supernet:
        extra.append("untrained weights (no --supernet)")
    if "max_abs_diff" in info:
        extra.append(f"max |diff| vs PyTorch {info['max_abs_diff']:.2g}")
    if "precision" in info:
        extra.append(f"{info['precision']}, {info['target']}")
    _report(args, info, f"wrote {info['path']} ({info['format']}, {_si(info['bytes'], 'B')}, {info['params']:,} parameters"
                        f"{''.join('; ' + e for e in extra)}) in {info['seconds']:.1f} s")
    return 0


# ---- nas train -----------------------------------------------------------------------------------
TRAIN_OPTIONS = ("data", "space", "resolution", "epochs", "max_steps", "batch_size", "lr", "seed", "supernet", "workers",
                 "drop_path", "save_every", "device")


@contextlib.contextmanager
def _train_progress(args: argparse.Namespace):
    """(progress, log) callbacks for training: a tqdm bar of images with loss, learning rate and img/s
    on stderr (a terminal, or --progress), and one line per epoch; both None with -q."""
    if args.quiet:
        yield None, None
        return
    if not (sys.stderr.isatty() or args.progress):
        yield None, lambda line: print(line, file=sys.stderr, flush=True)
        return
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(what: str, done: int, total: int, info: dict[str, Any]) -> None:
        bar = bars.get("bar")
        if bars.get("what") != what:
            if bar is not None:
                bar.close()
            bar = bars["bar"] = tqdm(total=total, initial=done, desc=what, unit="img", unit_scale=True, file=sys.stderr,
                                     dynamic_ncols=True, smoothing=0.1)
            bars["what"] = what
        else:
            bar.update(done - bar.n)
        bar.set_postfix(loss=f"{info['loss']:.3f}", lr=f"{info['lr']:.2e}", refresh=False)

    try:
        yield progress, lambda line: tqdm.write(line, file=sys.stderr)
    finally:
        if bars.get("bar") is not None:
            bars["bar"].close()


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    options = {key: getattr(args, key) for key in TRAIN_OPTIONS}
    if args.arch is not None:
        from .archref import resolve_arch

        options["arch"] = resolve_arch(args.arch, args.space or DEFAULT_SPACE).to_dict()
    with _train_progress(args) as (progress, log):
        result = train(options, args.out, resume=args.resume, progress=progress, log=log)
    if result is None:  # not rank 0 of a torchrun job
        return 0
    what = "supernet" if result["kind"] == "supernet" else "architecture"
    val = ", ".join(f"{k} {v:.2f}%" for k, v in result["val_top1"].items()) or "none yet"
    state = (f"{result['epochs']} epoch(s)" if result["complete"] else
             f"stopped in epoch {result['epochs'] + 1} (continue with --resume)")
    _report(args, result, f"trained the {what} of {result['space']} on {result['data']}: {state}, {result['steps']} steps, "
                          f"{result['seconds']:.0f} s, {result['images_per_s']:.0f} img/s; validation top-1: {val}; "
                          f"wrote {result['checkpoint']}")
    return 0


# ---- nas search / nas pareto ---------------------------------------------------------------------
def _search_progress(args: argparse.Namespace):
    """A tqdm bar of evaluations with feasible share, front size and hypervolume (stderr; terminal only
    unless --progress), or None."""
    if getattr(args, "quiet", False) or not (sys.stderr.isatty() or getattr(args, "progress", False)):
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="eval", file=sys.stderr, dynamic_ncols=True, desc="search")

    def update(state: dict[str, Any]) -> None:
        if bar.total != state["total"]:
            bar.reset(total=state["total"])
        bar.n = state["evaluated"]
        share = state["feasible"] / state["evaluated"] if state["evaluated"] else 0.0
        bar.set_postfix_str(f"feasible {share:.0%}, front {state['front']}, HV {state['hypervolume']:.4f}", refresh=False)
        bar.refresh()

    return update, bar


def _print_front(result: Any, notes: list[str] | None = None) -> None:
    estimated = " (ESTIMATED latencies)" if result.device_provenance == "estimated" else " (measured latencies)"
    shown = {"params": lambda v: f"params<={v:,.0f}", "macs": lambda v: f"macs<={_si(v)}",
             "latency_ms": lambda v: f"latency<={v:g} ms", "mes": lambda v: f"mes>={v:g}"}
    budget = ", ".join(shown[k](v) for k, v in result.budget.items()) or "none"
    print(f"run {result.run or '(in memory)'}: strategy {result.strategy}, device {result.device}{estimated}, budget {budget}")
    print(f"evaluated {result.evaluated}, feasible {result.feasible}, Pareto front {len(result.pareto)} "
          f"over {','.join(result.objectives)}, hypervolume {result.hypervolume:.4f}")
    rows = [[e["id"], f"{e['params']:,}", _si(e["macs"]), f"{e['latency_ms']:.3f}", f"{e['mes']:.1f}",
             "-" if e["accuracy"] is None else f"{e['accuracy']:.4g}", e["accuracy_source"] or "-"] for e in result.pareto]
    if rows:
        print(_table(rows, ["id", "params", "MACs", "latency ms", "MES", "accuracy", "source"]))
    for note in notes or []:
        print(f"note: {note}")


def cmd_search(args: argparse.Namespace) -> int:
    from .budget import Budget
    from .mes import parse_mes_options
    from .pareto import parse_objectives
    from .search import load_run_settings, search

    given = {
        "space": args.space, "budget": Budget.parse(args.budget) if args.budget else None, "device": args.device,
        "strategy": args.strategy, "sampler": args.sampler, "accuracy": args.accuracy, "proxy": args.proxy,
        "objectives": parse_objectives(args.objectives) if args.objectives else None, "seed": args.seed,
        "population": args.population, "storage": args.storage, "study": args.study, "supernet": args.supernet,
        "data": args.data,
    }
    alpha, unit = parse_mes_options(args.mes_alpha, args.mes_unit)
    given.update(mes_alpha=alpha or None, mes_unit=unit or None)
    if args.resume:
        if not args.out:
            raise BadInput("--resume needs --out RUN_DIR (the run to continue)")
        stored = load_run_settings(args.out)
        for key, value in given.items():  # a resumed run keeps the settings it was started with
            mine = value.to_dict() if isinstance(value, Budget) else (list(value) if isinstance(value, tuple) else value)
            if value is not None and key in stored and mine != stored[key]:
                raise BadInput(f"--{key.replace('_', '-')} {mine} differs from the run's ({stored[key]}); "
                               "a resumed run keeps its settings (only --trials may change)")
            given[key] = stored.get(key)
        if args.trials is None:
            args.trials = stored.get("trials")
    elif given["budget"] is None:
        raise BadInput("--budget is required, e.g. --budget params=3M latency=1ms")
    if (given.get("accuracy") or "proxy") == "proxy" and (given.get("supernet") or given.get("data")):
        raise BadInput("--supernet and --data are for --accuracy supernet or predictor, not the proxy")
    update, bar = _search_progress(args)
    try:
        result = search(trials=args.trials, out=args.out or _default_run_dir(), resume=args.resume, ray=args.ray,
                        progress=update, command=" ".join(["nas"] + sys.argv[1:]),
                        **{k: v for k, v in given.items() if v is not None})
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        _print_json(result.to_dict())
        return 0
    _print_front(result, result.notes)
    storage = given.get("storage") or f"{result.run}/study.db"
    print(f"files: {result.run}/pareto.json, {result.run}/run.yaml; trials in {storage} "
          f"(optuna-dashboard {storage if '://' in storage else 'sqlite:///' + storage})")
    return 0


def _default_run_dir() -> str:
    from datetime import datetime

    return str(Path("runs") / datetime.now().strftime("search-%Y%m%d-%H%M%S"))


def cmd_pareto(args: argparse.Namespace) -> int:
    from .search import compare_runs, run_result

    plot = None
    if args.plot:
        from .plots import check_plot_path

        plot = check_plot_path(args.plot)  # before reading any run
    elif args.x or args.y:
        raise BadInput("--x and --y choose the axes of a plot: add --plot FILE.png or --plot FILE.html")
    x, y = args.x or "latency", args.y or "accuracy"
    if x == y:
        raise BadInput(f"--x and --y are both {x!r}: choose two different metrics")
    results = [run_result(run) for run in args.runs]
    comparison = compare_runs(results) if len(results) > 1 else None
    notes = []
    if plot is not None:
        from .plots import plot_fronts

        notes = plot_fronts(results, plot, x=x, y=y)
    if args.json:
        if comparison is None:
            _print_json(results[0].to_dict())
        else:
            _print_json({"runs": [r.to_dict() for r in results], **comparison})
        for note in notes:
            print(f"nas: note: {note}", file=sys.stderr)
        return 0
    for i, result in enumerate(results):
        if i:
            print()
        _print_front(result)
    if comparison is not None:
        _print_comparison(results, comparison)
    if plot is not None:
        print(f"plot: {plot}")
    for note in notes:
        print(f"note: {note}")
    return 0


def _print_comparison(results: list[Any], comparison: dict[str, Any]) -> None:
    """The runs side by side, with each front's hypervolume at its own and at the common reference point."""
    shown = {"accuracy": lambda v: f"accuracy {v:.4g}", "latency_ms": lambda v: f"latency {v:.4g} ms",
             "params": lambda v: f"params {_si(v)}", "macs": lambda v: f"MACs {_si(v)}", "mes": lambda v: f"MES {v:.4g}"}
    reference = ", ".join(shown[k](v) for k, v in comparison["common_reference"].items())
    print()
    print(f"hypervolume at the common reference point (the worst of the runs' references: {reference})")
    rows = [[r.run or "-", r.strategy, str(r.evaluated), str(len(r.pareto)), f"{r.hypervolume:.4f}", f"{hv:.4f}"]
            for r, hv in zip(results, comparison["hypervolumes"])]
    print(_table(rows, ["run", "strategy", "evaluated", "front", "hypervolume (own)", "hypervolume (common)"]))


# ---- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from .export import FORMATS
    from .pareto import OBJECTIVES as AXES

    parser = _Parser(prog="nas", description="Hardware-aware neural architecture search for mobile vision transformers.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("spaces", help="list the shipped search spaces, or show one")
    p.add_argument("name", nargs="?", help="a shipped space name or a space YAML path")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_spaces)

    arch = sub.add_parser("arch", help="inspect an architecture")
    arch_sub = arch.add_subparsers(dest="arch_command", metavar="ACTION", parser_class=_Parser)
    arch_sub.required = True
    p = arch_sub.add_parser("show", help="parameters, MACs and a per-stage breakdown")
    p.add_argument("arch", metavar="ARCH", help="a preset (s0, s1, s2, l), an architecture file, or RUN_DIR#N")
    p.add_argument("--space", default=DEFAULT_SPACE, help="space whose presets ARCH may name (default: %(default)s)")
    p.add_argument("--device", help="device latency table for latency and MES")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_arch_show)

    lut = sub.add_parser("lut", help="device latency lookup tables")
    lut_sub = lut.add_subparsers(dest="lut_command", metavar="ACTION", parser_class=_Parser)
    lut_sub.required = True
    p = lut_sub.add_parser("list", help="the tables available (shipped and user-built)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_lut_list)
    p = lut_sub.add_parser("build", help="measure every layer configuration of a space on this machine")
    p.add_argument("--device", help="name of the table to build (e.g. my-laptop-ort)")
    p.add_argument("--backend", default="onnxruntime",
                   help="torch, torchscript, onnxruntime, cuda or coreml (default: %(default)s)")
    p.add_argument("--space", default=DEFAULT_SPACE, help="space to cover (default: %(default)s)")
    p.add_argument("--out", help="table file to write (default: $NAS_HOME/luts/DEVICE.json)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: %(default)s)")
    p.add_argument("--passes", type=int, default=7, help="interleaved timing passes (default: %(default)s)")
    p.add_argument("--calibration-samples", type=int, default=16, help="random subnets measured end to end to calibrate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted build without re-measuring")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="measure on a Ray cluster's devices (nodes started with the nas_lut_device resource); "
                        "without ADDRESS a local Ray instance on loopback")
    p.add_argument("--dry-run", action="store_true", help="only count the layer configurations to measure")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_lut_build)
    p = lut_sub.add_parser("validate", help="predicted vs measured end-to-end latency of random subnets")
    p.add_argument("--device", help="table to validate (default: the default device)")
    p.add_argument("--samples", type=int, default=50, help="random subnets (default: %(default)s)")
    p.add_argument("--passes", type=int, default=7, help="interleaved timing passes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", help="write a scatter plot of predicted against measured (PNG)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_lut_validate)

    p = lut_sub.add_parser("export-blocks", help="per-layer Core ML packages for measuring on a phone or Mac")
    p.add_argument("--backend", default="coreml", help="coreml (the only one: packages for Apple devices)")
    p.add_argument("--out", required=True, help="directory to write the packages and manifest.json to")
    p.add_argument("--space", default=DEFAULT_SPACE, help="space to cover (default: %(default)s)")
    p.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
    p.add_argument("--calibration-models", type=int, default=8, help="random whole models to export for calibration")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_lut_export_blocks)
    p = lut_sub.add_parser("import", help="read phone measurements (JSON or CSV of key -> ms) into a table")
    p.add_argument("file", metavar="FILE", help="measurements: JSON {blocks: {key: ms}, models: {id: ms}} or CSV key,ms")
    p.add_argument("--device", help="name of the table to write")
    p.add_argument("--space", default=DEFAULT_SPACE, help="space the keys belong to (default: %(default)s)")
    p.add_argument("--manifest", help="the export's manifest.json (to calibrate on whole-model measurements)")
    p.add_argument("--backend", default="coreml", help="backend the measurements were taken with (default: %(default)s)")
    p.add_argument("--out", help="table file to write (default: $NAS_HOME/luts/DEVICE.json)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_lut_import)

    p = sub.add_parser("export", help="write an architecture as a file or a standalone model")
    p.add_argument("arch", metavar="ARCH", help="a preset (s0, s1, s2, l), an architecture file, RUN_DIR#N (any trial "
                   "of a search run), or RUN_DIR with --pick")
    p.add_argument("--format", required=True, choices=FORMATS, help="yaml: the architecture file; pt: the standalone "
                   "torch.nn.Module saved whole (torch.load(path, weights_only=False)); torchscript: traced and frozen; "
                   "onnx: checked in ONNX Runtime; coreml: an ML program .mlpackage")
    p.add_argument("--out", required=True, help="output path (coreml: NAME.mlpackage)")
    p.add_argument("--pick", metavar="RULE", help="choose a front entry of the run ARCH: best-accuracy, best-mes, or the "
                   "most accurate within limits such as 'latency<=0.8ms,params<=3M' (also macs<=, mes>=, accuracy>=)")
    p.add_argument("--supernet", metavar="CKPT", help="take the weights from this trained supernet checkpoint "
                   "(default: random initialisation)")
    p.add_argument("--space", default=None, help=f"space whose presets ARCH may name and of the --supernet "
                   f"(default: {DEFAULT_SPACE} for presets, the architecture's own for --supernet)")
    p.add_argument("--state-dict", action="store_true", help="pt: write only the weights (a state_dict for "
                   "supernet.SubNet(arch), loadable with weights_only=True)")
    p.add_argument("--precision", choices=("fp16", "fp32"), default=None, help="coreml compute precision (default: fp16)")
    p.add_argument("--target", default=None, help="coreml minimum deployment target: iOS15, iOS16, iOS17, iOS18, "
                   "macOS13, ... (default: iOS16)")
    p.add_argument("--dynamic-batch", action="store_true", help="onnx: a free batch dimension (default: batch 1, "
                   "a few percent faster in ONNX Runtime)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="train the supernet (sandwich rule, in-place distillation) or one architecture")
    p.add_argument("--data", required=True, metavar="SRC", help="fashion-mnist[:DIR], synthetic[:train=N,val=N,classes=N,"
                   "size=N], or an ImageFolder directory (DIR/train/CLASS/*.png and DIR/val/..., or DIR/CLASS/*)")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (atomically, every epoch and "
                   "every --save-every steps)")
    p.add_argument("--space", default=None, help=f"search space (default: {DEFAULT_SPACE}; efficientformerv2-tiny for "
                   "fashion-mnist and synthetic; the architecture's with --arch)")
    p.add_argument("--resolution", type=int, default=None, help="input resolution, a multiple of 32 (default: the "
                   "space's; 32 for fashion-mnist and synthetic)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the cosine schedule (default: 1)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in all (continue with --resume)")
    p.add_argument("--batch-size", type=int, default=None, help="global batch over all processes (default: 128)")
    p.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate (default: 1e-3)")
    p.add_argument("--drop-path", type=float, default=None, help="stochastic depth rate of the last block (default: 0)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: 0); same seed, same weights")
    p.add_argument("--save-every", type=int, default=None, help="also save every N steps within an epoch (default: 200)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint --out exactly where it stopped "
                   "(a new run when it does not exist yet)")
    p.add_argument("--arch", metavar="ARCH", default=None, help="train this architecture alone (a preset, an architecture "
                   "file or RUN_DIR#N) instead of the supernet")
    p.add_argument("--supernet", metavar="CKPT", default=None, help="start from this trained supernet's weights")
    p.add_argument("--workers", type=int, default=None, help="DataLoader processes decoding image files (default: 1; "
                   "in-memory data sets use none)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="(default: cuda when available)")
    p.add_argument("--progress", action="store_true", help="draw the progress bar even when stderr is not a terminal")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("search", help="search for the Pareto-optimal architectures under a budget")
    p.add_argument("--budget", nargs="+", metavar="K=V", help="params=3M latency=1ms macs=400M mes=50 (AND of all)")
    p.add_argument("--space", default=None, help=f"search space (default: {DEFAULT_SPACE})")
    p.add_argument("--device", default=None, help="latency table (default: the shipped default device; see nas lut list)")
    p.add_argument("--strategy", default=None, choices=["evolution", "optuna", "actions"], help="(default: evolution)")
    p.add_argument("--sampler", default=None, choices=["nsga2", "nsga3", "tpe", "gp", "random"],
                   help="Optuna sampler for --strategy optuna (default: nsga2)")
    p.add_argument("--trials", type=int, default=None, help="evaluations in total, over resumes (default: 500; "
                   "actions: until the budget holds)")
    p.add_argument("--accuracy", default=None, choices=["proxy", "supernet", "predictor"],
                   help="accuracy estimator (default: proxy, training-free)")
    p.add_argument("--proxy", default=None, help="which training-free proxy (see nas.accuracy.PROXIES)")
    p.add_argument("--supernet", default=None, metavar="CKPT", help="trained supernet checkpoint (--accuracy supernet)")
    p.add_argument("--data", default=None, metavar="SRC", help="validation data for --accuracy supernet")
    p.add_argument("--objectives", default=None, help="Pareto objectives (default: accuracy,latency,params; also macs, mes)")
    p.add_argument("--mes-alpha", default=None, help="MES exponents, e.g. latency=1,params=0.5")
    p.add_argument("--mes-unit", default=None, help="MES units, e.g. latency=1ms,params=3M")
    p.add_argument("--population", type=int, default=None, help="population of evolution / NSGA (default: 50)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: 0); same seed, same front")
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="run directory (default: runs/search-DATE-TIME)")
    p.add_argument("--storage", default=None, metavar="URL", help="Optuna RDB URL (default: sqlite in RUN_DIR); "
                   "workers given the same URL and --study share one study")
    p.add_argument("--study", default=None, help="study name in the storage (default: nas-search)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out to its --trials total")
    p.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="run evaluations as Ray Tune trials (no address: a local Ray instance on loopback)")
    p.add_argument("--progress", action="store_true", help="draw the progress bar even when stderr is not a terminal")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("pareto", help="show the Pareto front of a finished or running search; compare and plot runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (several: their fronts compared, with "
                   "hypervolumes at a common reference point)")
    p.add_argument("--plot", metavar="FILE", help="also draw the front(s): FILE.png (an image) or FILE.html (interactive, "
                   "the architecture on hover)")
    p.add_argument("--x", choices=tuple(AXES), default=None, help="metric on the plot's x axis (default: latency)")
    p.add_argument("--y", choices=tuple(AXES), default=None, help="metric on the plot's y axis (default: accuracy)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout (several runs: "
                   '{"runs": [...], "common_reference": {...}, "hypervolumes": [...]})')
    p.set_defaults(func=cmd_pareto)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        code = exit_code_of(exc)
        if debug:
            traceback.print_exc()
        if code is None:
            print(f"nas: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
            return 1
        print(f"nas: error: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
