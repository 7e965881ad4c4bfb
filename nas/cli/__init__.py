"""The ``nas`` command line: a thin layer over the library, one module (and class) per command.

``COMMANDS`` is the registry; groups (``nas arch show``, ``nas lut build``) come from the commands'
two-word names. ``-q``, ``--debug`` and ``--progress`` work in every position; ``nas --version`` prints
the version; ``nas --print-completion bash|zsh|tcsh`` prints a shell completion script (shtab).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any

from search_spaces.provenance import tool_version

from ..errors import exit_code_of
from .arch import ArchShowCommand
from .base import Command, Parser, common_options
from .export import ExportCommand
from .lut import (
    LutBuildCommand,
    LutExportBlocksCommand,
    LutExportModelsCommand,
    LutFitCommand,
    LutImportCommand,
    LutListCommand,
    LutValidateCommand,
)
from .pareto import ParetoCommand
from .search import SearchCommand
from .spaces import SpacesCommand
from .train import TrainCommand

#: Every command, in the order ``nas --help`` lists them.
COMMANDS: tuple[type[Command], ...] = (
    SpacesCommand,
    ArchShowCommand,
    LutListCommand,
    LutBuildCommand,
    LutValidateCommand,
    LutExportBlocksCommand,
    LutImportCommand,
    LutExportModelsCommand,
    LutFitCommand,
    ExportCommand,
    TrainCommand,
    SearchCommand,
    ParetoCommand,
)
GROUPS = {"arch": "inspect an architecture", "lut": "device latency lookup tables"}


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = Parser(
        prog="nas", parents=[common], description="Hardware-aware neural architecture search for mobile vision transformers."
    )
    parser.set_defaults(quiet=False, debug=False, progress=False)
    parser.add_argument("--version", action="version", version=f"nas {tool_version()}")
    _add_completion(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    groups: dict[str, Any] = {}  # group name -> its subparsers
    for cls in COMMANDS:
        command = cls()
        group, _, leaf = command.name.partition(" ")
        if leaf:
            if group not in groups:
                grouped = sub.add_parser(group, help=GROUPS[group], parents=[common])
                groups[group] = grouped.add_subparsers(dest=f"{group}_command", metavar="ACTION", parser_class=Parser)
                groups[group].required = True
            p = groups[group].add_parser(leaf, help=command.help, parents=[common])
        else:
            p = sub.add_parser(command.name, help=command.help, parents=[common])
        command.add_arguments(p)
        if command.json:
            p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        p.set_defaults(func=command.run, command_object=command)
    return parser


def _add_completion(parser: argparse.ArgumentParser) -> None:
    try:
        import shtab
    except ImportError:  # completion is a convenience; the tool works without it
        return
    shtab.add_argument_to(parser, ["--print-completion"], help="print a shell completion script (bash, zsh or tcsh)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    args = None
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt as exc:  # a TrainingInterrupted says what it saved
        hint = args.command_object.resume_hint(args, list(argv)) if args is not None else None
        saved = f" ({exc})" if str(exc) else ""
        print(f"nas: interrupted{saved}" + (f"; continue with: {hint}" if hint else ""), file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help, --version
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


__all__ = ["main", "build_parser", "COMMANDS"]
