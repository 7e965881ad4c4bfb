"""``nas export ARCH --format F --out PATH``: an architecture file or a standalone model."""

from __future__ import annotations

import argparse
import sys

from search_spaces import DEFAULT_SPACE

from ..export import DEFAULT_PRECISION, DEFAULT_TARGET, FORMATS, check_request, export, trained_model
from ..search.refs import resolve
from .base import Command, report, si


class ExportCommand(Command):
    name = "export"
    help = "write an architecture as a file or a standalone model"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "arch",
            metavar="ARCH",
            help="a preset (s0, s1, s2, l), an architecture file, RUN_DIR#N (any trial of a search run), or RUN_DIR with --pick",
        )
        parser.add_argument(
            "--format",
            required=True,
            choices=FORMATS,
            help="yaml: the architecture file; pt: the "
            "standalone torch.nn.Module saved whole (torch.load(path, weights_only=False)); torchscript: "
            "traced and frozen; onnx: checked in ONNX Runtime; coreml: an ML program .mlpackage",
        )
        parser.add_argument("--out", required=True, help="output path (coreml: NAME.mlpackage)")
        parser.add_argument(
            "--pick",
            metavar="RULE",
            help="choose a front entry of the run ARCH: best-accuracy, best-mes, or "
            "the most accurate within limits such as 'latency<=0.8ms,params<=3M' (also macs<=, mes>=, "
            "accuracy>=)",
        )
        parser.add_argument(
            "--supernet",
            metavar="CKPT",
            help="take the weights from this trained supernet checkpoint (default: random initialisation)",
        )
        parser.add_argument(
            "--space",
            default=None,
            help=f"space whose presets ARCH may name and of the --supernet "
            f"(default: {DEFAULT_SPACE} for presets, the architecture's own for --supernet)",
        )
        parser.add_argument(
            "--state-dict",
            action="store_true",
            help="pt: write only the weights (a state_dict for supernet.SubNet(arch), loadable with weights_only=True)",
        )
        parser.add_argument(
            "--precision", choices=("fp16", "fp32"), default=None, help=f"coreml compute precision (default: {DEFAULT_PRECISION})"
        )
        parser.add_argument(
            "--target",
            default=None,
            help=f"coreml minimum deployment target: iOS15, iOS16, iOS17, iOS18, macOS13, ... (default: {DEFAULT_TARGET})",
        )
        parser.add_argument(
            "--dynamic-batch",
            action="store_true",
            help="onnx: a free batch dimension (default: batch 1, a few percent faster in ONNX Runtime)",
        )

    def run(self, args: argparse.Namespace) -> int:
        options = {
            "state_dict": args.state_dict,
            "precision": args.precision,
            "target": args.target,
            "dynamic_batch": args.dynamic_batch,
        }
        check_request(args.format, args.out, with_weights=bool(args.supernet), **options)  # before any long work
        arch, entry = resolve(args.arch, args.space or DEFAULT_SPACE, pick=args.pick)
        model, weights = None, None
        if args.supernet:
            arch, model = trained_model(arch, args.supernet, args.space)
            weights = f"supernet checkpoint {args.supernet}"
        info = export(
            arch,
            args.format,
            args.out,
            model=model,
            entry=entry,
            weights=weights,
            progress=not args.quiet and sys.stderr.isatty(),
            **options,
        )
        extra = [f"from {info['source']}"] if info.get("source") else []
        if args.format != "yaml" and not args.supernet:
            extra.append("untrained weights (no --supernet)")
        if "max_abs_diff" in info:
            extra.append(f"max |diff| vs PyTorch {info['max_abs_diff']:.2g}")
        if "precision" in info:
            extra.append(f"{info['precision']}, {info['target']}")
        report(
            args,
            info,
            f"wrote {info['path']} ({info['format']}, {si(info['bytes'], 'B')}, {info['params']:,} parameters"
            f"{''.join('; ' + e for e in extra)}) in {info['seconds']:.1f} s",
        )
        return 0


__all__ = ["ExportCommand"]
