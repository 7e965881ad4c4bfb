"""``nas spaces [NAME]``: the shipped search spaces, or one space's choices and size."""

from __future__ import annotations

import argparse

import search_spaces

from .base import Command, print_json, table


class SpacesCommand(Command):
    name = "spaces"
    help = "list the shipped search spaces, or show one"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", help="a shipped space name or a space YAML path")

    def run(self, args: argparse.Namespace) -> int:
        if args.name:
            return self._show(args)
        spaces = [search_spaces.load(name) for name in search_spaces.list_spaces()]
        if args.json:
            print_json(
                [
                    {
                        "name": s.name,
                        "size": s.size(),
                        "resolutions": list(s.resolutions),
                        "presets": s.preset_names,
                        "source": s.source,
                    }
                    for s in spaces
                ]
            )
            return 0
        rows = [
            [s.name, f"{float(s.size()):.3g}", ", ".join(map(str, s.resolutions)), ", ".join(s.preset_names) or "-"]
            for s in spaces
        ]
        print(table(rows, ["space", "architectures", "resolutions", "presets"]))
        return 0

    def _show(self, args: argparse.Namespace) -> int:
        info = search_spaces.load(args.name).describe()
        if args.json:
            print_json(info)
            return 0
        print(f"space {info['name']}  ({info['source']})")
        if info["description"]:
            print(info["description"])
        print(f"architectures: {info['size']:,} ({float(info['size']):.3g})")
        print(
            f"resolutions: {', '.join(map(str, info['resolutions']))}   classes: {info['num_classes']}"
            f"   distillation head: {'yes' if info['distillation'] else 'no'}"
        )
        rows = [
            [
                f"stage{i + 1}",
                _choices(st["depths"]),
                _choices(st["widths"]),
                _choices(st["ratios"]),
                ", ".join(st["mixers"]),
                st["downsample"],
                str(st["mhsa_stride"]),
                _sepvit(st) if "sepvit" in st["mixers"] else "-",
            ]
            for i, st in enumerate(info["stages"])
        ]
        print(table(rows, ["stage", "depths", "widths", "ratios", "mixers", "entered by", "mhsa stride", "sepvit"]))
        print(f"presets: {', '.join(info['presets']) or 'none'}")
        return 0


def _sepvit(stage: dict) -> str:
    heads, window = stage["sepvit_heads"], stage["sepvit_window"]
    return f"{heads} head{'s' if heads > 1 else ''}, {window}x{window} windows"


def _choices(values: list) -> str:
    ints = all(isinstance(v, int) for v in values)
    if ints and len(values) > 3 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


__all__ = ["SpacesCommand"]
