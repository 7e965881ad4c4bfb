"""``nas arch show ARCH``: parameters, MACs, latency, MES and a per-stage breakdown."""

from __future__ import annotations

import argparse

import latency_lut
import supernet
from search_spaces import DEFAULT_SPACE

from ..evaluate import evaluate, stage_breakdown
from ..search.refs import resolve_arch
from .base import Command, note, print_json, si, table


class ArchShowCommand(Command):
    name = "arch show"
    help = "parameters, MACs and a per-stage breakdown"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arch", metavar="ARCH", help="a preset (s0, s1, s2, l), an architecture file, or RUN_DIR#N")
        parser.add_argument("--space", default=DEFAULT_SPACE, help="space whose presets ARCH may name (default: %(default)s)")
        parser.add_argument("--device", help="device latency table for latency and MES")

    def run(self, args: argparse.Namespace) -> int:
        arch = resolve_arch(args.arch, args.space)
        lut, missing = None, None
        try:
            lut = latency_lut.load(args.device)
            metrics = evaluate(arch, lut=lut)
        except latency_lut.LUTError as exc:
            if args.device:  # the user named the device: its problems are errors
                raise
            lut, missing = None, f"no latency: {exc}"
            counts = supernet.count(arch)
            metrics = {"params": counts.params, "macs": counts.macs}
        stages = stage_breakdown(arch, lut)
        if missing:
            note(missing)
        if lut is not None and (mismatch := lut.host_notice()):
            note(mismatch)
        if args.json:
            print_json({"arch": arch.to_dict(), **metrics, "stages": stages})
            return 0
        print(f"architecture {arch.id}  space {arch.search_space.name}  resolution {arch.resolution}")
        print(f"params {metrics['params']:,} ({si(metrics['params'])})   MACs {metrics['macs']:,} ({si(metrics['macs'])})")
        if lut is not None:
            threads = f", {lut.threads} thread(s)" if lut.threads else ""
            error = "" if lut.error_pct is None else f" ± {metrics['latency_error_ms']:.3f}"
            typical = "" if lut.error_pct is None else f", typical error ±{lut.error_pct:g}% held out"
            print(
                f"latency {metrics['latency_ms']:.3f}{error} ms on {lut.device} ({lut.backend}{threads}, "
                f"{lut.provenance_label}{typical})   MES {metrics['mes']:.1f}"
            )
        rows = []
        for row in stages:
            mixers = row.get("mixers")
            mixer_text = "-" if mixers is None else " ".join(m if m != "none" else "." for m in mixers)
            ratios = row.get("ratios")
            rows.append(
                [
                    row["stage"],
                    str(row.get("depth", "-")),
                    str(row.get("width", "-")),
                    "-" if ratios is None else " ".join(map(str, ratios)),
                    mixer_text,
                    f"{row['params']:,}",
                    si(row["macs"]),
                ]
                + ([f"{row['layer_ms']:.3f}"] if lut is not None else [])
            )
        header = ["stage", "depth", "width", "FFN ratios", "mixers (. = none)", "params", "MACs"]
        print(table(rows, header + (["table ms"] if lut is not None else [])))
        if lut is not None:
            cal = lut.calibration
            print(
                f"(table ms: the layers' entries; end-to-end = {cal.scale:.3f} x sum + {cal.per_layer_ms:.4f} ms x layers "
                f"+ {cal.offset_ms:.3f} ms)"
            )
        return 0


__all__ = ["ArchShowCommand"]
