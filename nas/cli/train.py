"""``nas train --data SRC --out CKPT``: train the supernet, or one architecture."""

from __future__ import annotations

import argparse
import sys

from search_spaces import DEFAULT_SPACE

from ..search.refs import resolve_arch
from ..train import train
from ..train.acceleration import MEMORY_FORMATS
from ..train.data import SOURCES
from ..train.distill import DISTILL_LOSSES
from ..train.precision import PRECISIONS
from ..train.settings import TrainSettings
from .base import Command, note, progress_bar, report, resume_command

#: The options of the command that are training settings.
TRAIN_OPTIONS = (
    "data",
    "space",
    "resolution",
    "epochs",
    "max_steps",
    "batch_size",
    "lr",
    "seed",
    "train_images",
    "distill",
    "sample_gap",
    "calib_batches",
    "supernet",
    "workers",
    "drop_path",
    "save_every",
    "accelerator",
    "precision",
    "memory_format",
    "compile_eval",
)
DEFAULTS = TrainSettings()


class TrainCommand(Command):
    name = "train"
    help = "train the supernet (sandwich rule, in-place distillation) or one architecture"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", required=True, metavar="SRC", help=SOURCES)
        p.add_argument(
            "--out",
            required=True,
            metavar="CKPT",
            help="checkpoint to write (atomically, every epoch and every --save-every steps)",
        )
        p.add_argument(
            "--space",
            default=None,
            help=f"search space (default: {DEFAULT_SPACE}; efficientformerv2-tiny for "
            "fashion-mnist and synthetic; the architecture's with --arch)",
        )
        p.add_argument(
            "--resolution",
            type=int,
            default=None,
            help="input resolution, a multiple of 32 (default: the space's; 32 for fashion-mnist and synthetic)",
        )
        p.add_argument("--epochs", type=int, default=None, help=f"epochs of the cosine schedule (default: {DEFAULTS.epochs})")
        p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in all (continue with --resume)")
        p.add_argument(
            "--batch-size", type=int, default=None, help=f"global batch over all processes (default: {DEFAULTS.batch_size})"
        )
        p.add_argument("--lr", type=float, default=None, help=f"peak AdamW learning rate (default: {DEFAULTS.lr:g})")
        p.add_argument(
            "--drop-path",
            type=float,
            default=None,
            help=f"stochastic depth rate of the last block (default: {DEFAULTS.drop_path:g})",
        )
        p.add_argument(
            "--train-images",
            type=int,
            default=None,
            metavar="N",
            help="train on a class-balanced subset of N training images, the same for every run (default: all)",
        )
        p.add_argument(
            "--distill",
            choices=DISTILL_LOSSES,
            default=None,
            help="supernet in-place distillation loss: kl, or alpha (AlphaNet's adaptive alpha-divergence) (default: kl)",
        )
        p.add_argument(
            "--sample-gap",
            type=float,
            default=None,
            metavar="RATIO",
            help="bound the MACs ratio between consecutive random subnets of the supernet (e.g. 2; default: none)",
        )
        p.add_argument(
            "--calib-batches",
            type=int,
            default=None,
            metavar="N",
            help=f"batches recalibrating BatchNorm before each subnet's validation (default: {DEFAULTS.calib_batches})",
        )
        p.add_argument("--seed", type=int, default=None, help=f"random seed (default: {DEFAULTS.seed}); same seed, same weights")
        p.add_argument(
            "--save-every",
            type=int,
            default=None,
            help=f"also save every N steps within an epoch (default: {DEFAULTS.save_every})",
        )
        p.add_argument(
            "--resume",
            action="store_true",
            help="continue the checkpoint --out exactly where it stopped (a new run when it does not exist yet)",
        )
        p.add_argument(
            "--arch",
            metavar="ARCH",
            default=None,
            help="train this architecture alone (a preset, an architecture file or RUN_DIR#N) instead of the supernet",
        )
        p.add_argument("--supernet", metavar="CKPT", default=None, help="start from this trained supernet's weights")
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help="DataLoader processes decoding image files (default: 1; in-memory data sets use none)",
        )
        p.add_argument(
            "--precision",
            choices=PRECISIONS,
            default=None,
            help="fp32, or bf16 / fp16 autocast (fp16 with a gradient scaler; for GPUs) (default: fp32)",
        )
        p.add_argument(
            "--memory-format",
            choices=MEMORY_FORMATS,
            default=None,
            help="layout of weights and batches (default: channels-last, the faster on CPU and GPU)",
        )
        p.add_argument(
            "--compile-eval",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="torch.compile each subnet before validating it (pays on large validation sets)",
        )
        p.add_argument(
            "--accelerator", choices=("cpu", "cuda"), default=None, help="where to train (default: cuda when available)"
        )
        p.add_argument(
            "--device",
            choices=("cpu", "cuda"),
            default=None,
            dest="old_device",
            help="deprecated spelling of --accelerator (elsewhere --device names a latency table)",
        )

    def resume_hint(self, args: argparse.Namespace, argv: list[str]) -> str | None:
        return resume_command(argv)

    def run(self, args: argparse.Namespace) -> int:
        if args.old_device is not None:
            note("nas train --device is deprecated: use --accelerator (elsewhere in nas, --device names a latency table)")
            args.accelerator = args.accelerator or args.old_device
        options = {key: getattr(args, key) for key in TRAIN_OPTIONS}
        if args.arch is not None:
            options["arch"] = resolve_arch(args.arch, args.space or DEFAULT_SPACE).to_dict()
        with progress_bar(args, "img", unit_scale=True) as bar:
            log = None if args.quiet else (bar.write if bar is not None else _stderr)
            result = train(options, args.out, resume=args.resume, progress=bar, log=log)
        if result is None:  # not rank 0 of a torchrun job
            return 0
        what = "supernet" if result["kind"] == "supernet" else "architecture"
        val = ", ".join(f"{k} {v:.2f}%" for k, v in result["val_top1"].items()) or "none yet"
        state = (
            f"{result['epochs']} epoch(s)"
            if result["complete"]
            else f"stopped in epoch {result['epochs'] + 1} (continue with --resume)"
        )
        report(
            args,
            result,
            f"trained the {what} of {result['space']} on {result['data']}: {state}, {result['steps']} steps, "
            f"{result['seconds']:.0f} s, {result['images_per_s']:.0f} img/s; validation top-1: {val}; "
            f"wrote {result['checkpoint']}",
        )
        return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


__all__ = ["TrainCommand", "TRAIN_OPTIONS"]
