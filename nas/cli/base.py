"""What every command shares: the base class, the common options, and the output helpers.

A command is a :class:`Command` subclass (as Optuna's command line has a class per command): its
``name`` (``"lut build"`` for a subcommand of a group), ``help``, ``add_arguments`` and ``run``. The
options of :func:`common_options` (``-q``, ``--debug``, ``--progress``) are accepted in every position,
before or after the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from ..errors import BadInput
from ..progress import ProgressBar


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line, `nas: error: ...`, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{message} (see '{self.prog} --help')")


def common_options() -> argparse.ArgumentParser:
    """The options every command takes in any position. Their defaults are set once on the top parser
    (``SUPPRESS`` here), so a subcommand's parser never resets what was given before the command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    common.add_argument(
        "--progress", action="store_true", default=argparse.SUPPRESS, help="draw progress bars even when stderr is not a terminal"
    )
    return common


class Command:
    """One command of ``nas``."""

    name: ClassVar[str]
    help: ClassVar[str]
    #: Whether the command prints a result that ``--json`` gives machine-readable.
    json: ClassVar[bool] = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The command's own options."""

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError

    def resume_hint(self, args: argparse.Namespace, argv: list[str]) -> str | None:
        """After an interruption: the command that continues the work (None: nothing to continue)."""
        return None


# ---- output ----------------------------------------------------------------------------------------
def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def report(args: argparse.Namespace, info: dict[str, Any], line: str) -> None:
    """A command's result: `info` as JSON with --json, else one line for people."""
    if args.json:
        print_json(info)
    else:
        print(line)


def si(value: float, unit: str = "") -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}{unit}"
    return f"{value:g} {unit}".rstrip()


def table(rows: list[list[str]], header: list[str]) -> str:
    cells = [header] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def resume_command(argv: list[str], **options: str) -> str:
    """``nas ARGV --resume`` (with `options` such as ``out=DIR`` added when the user gave none)."""
    parts = ["nas"] + [a for a in argv if a not in ("--resume",)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if flag not in parts:
            parts += [flag, value]
    return " ".join(parts + ["--resume"])


def note(line: str) -> None:
    print(f"nas: note: {line}", file=sys.stderr)


@contextmanager
def progress_bar(args: argparse.Namespace, unit: str = "item", *, unit_scale: bool = False) -> Iterator[ProgressBar | None]:
    """The command's progress bar on stderr (a terminal, or ``--progress``; never with ``-q``), or None."""
    if args.quiet or not (sys.stderr.isatty() or args.progress):
        yield None
        return
    with ProgressBar(unit, unit_scale=unit_scale) as bar:
        yield bar


__all__ = ["Command", "Parser", "common_options", "print_json", "report", "si", "table", "note", "progress_bar", "resume_command"]
