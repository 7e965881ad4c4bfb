"""The `nas` command line: a thin layer over search_spaces, supernet and nas (SPEC section 4)."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
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
    from .archref import resolve_arch
    from .evaluate import evaluate, stage_breakdown

    arch = resolve_arch(args.arch, args.space)
    metrics = evaluate(arch, device=args.device)
    stages = stage_breakdown(arch)
    if args.json:
        _print_json({"arch": arch.to_dict(), **metrics, "stages": stages})
        return 0
    print(f"architecture {arch.id}  space {arch.search_space.name}  resolution {arch.resolution}")
    print(f"params {metrics['params']:,} ({_si(metrics['params'])})   MACs {metrics['macs']:,} ({_si(metrics['macs'])})")
    rows = []
    for row in stages:
        mixers = row.get("mixers")
        mixer_text = "-" if mixers is None else " ".join(m if m != "none" else "." for m in mixers)
        ratios = row.get("ratios")
        rows.append([row["stage"], str(row.get("depth", "-")), str(row.get("width", "-")),
                     "-" if ratios is None else " ".join(map(str, ratios)), mixer_text,
                     f"{row['params']:,}", _si(row["macs"])])
    print(_table(rows, ["stage", "depth", "width", "FFN ratios", "mixers (. = none)", "params", "MACs"]))
    return 0


# ---- nas export ----------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from .archref import resolve_arch
    from .export import export

    arch = resolve_arch(args.arch, args.space)
    info = export(arch, args.format, args.out)
    if args.json:
        _print_json(info)
    else:
        print(f"wrote {info['path']} ({info['format']}, {_si(info['bytes'], 'B')}, {info['params']:,} parameters)")
    return 0


# ---- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from .export import FORMATS

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

    p = sub.add_parser("export", help="write an architecture as a file or a standalone model")
    p.add_argument("arch", metavar="ARCH", help="a preset (s0, s1, s2, l), an architecture file, or RUN_DIR#N")
    p.add_argument("--format", required=True, choices=FORMATS, help="yaml: the architecture file; pt: a standalone "
                   "torch.nn.Module saved whole (load with torch.load(path, weights_only=False))")
    p.add_argument("--out", required=True, help="output path")
    p.add_argument("--space", default=DEFAULT_SPACE, help="space whose presets ARCH may name (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_export)
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
