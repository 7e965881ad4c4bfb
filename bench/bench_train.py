"""Training throughput: a sandwich-rule supernet step against training the largest subnet alone.

Ways of spending a step on the same batches, timed in interleaved rounds (medians of the rounds). The
first four run contiguous (NCHW) tensors, the layout of earlier versions (``--memory-format contiguous``);
the two ``-channels-last`` modes run the default layout:
- ``sandwich``: the supernet step of ``nas train`` (largest, smallest and two random subnets, distillation);
- ``largest-in-supernet``: only the largest subnet, run through the supernet (weight slicing);
- ``largest-alone``: the largest subnet as a plain extracted module (what ``nas train --arch`` trains);
- ``sandwich-bf16``: the sandwich step under bf16 autocast (``nas train --precision bf16``);
- ``sandwich-channels-last``: the sandwich step with weights and batches NHWC (the default layout);
- ``largest-alone-channels-last``: ``largest-alone`` in NHWC (what ``nas train --arch`` runs by default).
Also the time to prepare one batch (indexing, crop/flip, resize, normalise) in the main process, as a
share of the sandwich step: it tells whether DataLoader worker processes would pay off.

    python bench/bench_train.py [--data fashion-mnist] [--space efficientformerv2-tiny] [--resolution 32]
    python bench/bench_train.py --device cuda      # the same on a GPU (timings synchronised)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nas.train import Processes, Trainer, TrainSettings
from nas.train.data import Loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist" if Path("/usr/share/datasets/fashion-mnist").is_dir() else "synthetic")
    parser.add_argument("--space", default=None)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flush-denormal", type=int, default=1, help="1: flush denormals, as nas train does")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()

    torch.set_flush_denormal(bool(args.flush_denormal))
    procs = Processes.start(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    base = TrainSettings.resolve(
        {
            "data": args.data,
            "space": args.space,
            "resolution": args.resolution,
            "batch_size": args.batch_size,
            "epochs": 1,
            "memory_format": "contiguous",
        }
    )
    out = Path(tempfile.mkdtemp()) / "unused.pt"
    sandwich = Trainer(base, out, procs)
    largest = sandwich.space.largest()
    in_supernet = Trainer(base, out, procs)
    # the same supernet step with one subnet: the draw train_step asks for its subnets, replaced (replacing
    # `archs` instead, as this script once did, no longer changed the step: a sandwich was timed twice)
    in_supernet._draw = lambda step: ([largest], None)
    alone = Trainer(dataclasses.replace(base, arch=largest.to_dict(), space=sandwich.space.base_ref), out, procs)
    bf16 = Trainer(dataclasses.replace(base, precision="bf16"), out, procs)
    nhwc = Trainer(dataclasses.replace(base, memory_format="channels-last"), out, procs)
    alone_nhwc = Trainer(dataclasses.replace(alone.settings, memory_format="channels-last"), out, procs)
    loader = Loader(sandwich.data, "train", resolution=sandwich.resolution, batch_size=args.batch_size, train=True)
    batches = []
    for x, y in loader:
        batches.append((x.to(procs.device), y.to(procs.device)))
        if len(batches) == args.steps:
            break

    nhwc_batches = [(x.to(memory_format=torch.channels_last), y) for x, y in batches]
    modes = {
        "sandwich": (sandwich, batches),
        "largest-in-supernet": (in_supernet, batches),
        "largest-alone": (alone, batches),
        "sandwich-bf16": (bf16, batches),
        "sandwich-channels-last": (nhwc, nhwc_batches),
        "largest-alone-channels-last": (alone_nhwc, nhwc_batches),
    }
    for trainer, mode_batches in modes.values():  # warm-up: first calls build caches
        trainer.train_step(*mode_batches[0])
    rates: dict[str, list[float]] = {m: [] for m in modes}
    prep: list[float] = []
    for _ in range(args.rounds):
        for name, (trainer, mode_batches) in modes.items():
            sync()
            start = time.perf_counter()
            for x, y in mode_batches:
                trainer.train_step(x, y)
            sync()
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
        start = time.perf_counter()
        for _, _ in zip(range(args.steps), loader):
            pass
        prep.append((time.perf_counter() - start) / args.steps)

    print(
        f"data {args.data}, space {sandwich.space.ref}, batch {args.batch_size}, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds x {args.steps} steps (medians)"
    )
    med = {m: statistics.median(r) for m, r in rates.items()}
    for name, value in med.items():
        print(f"  {name:<24} {value:8.1f} img/s  ({min(rates[name]):.1f}-{max(rates[name]):.1f})")

    def ratio(a: str, b: str) -> str:
        """The median and range of a/b over the rounds: each round times both within seconds of each
        other, so a change of the machine's speed between rounds cancels."""
        per_round = [x / y for x, y in zip(rates[a], rates[b])]
        return f"{statistics.median(per_round):.3f} ({min(per_round):.3f}-{max(per_round):.3f} over rounds)"

    print(
        f"  sandwich / largest-alone = {ratio('sandwich', 'largest-alone')} "
        f"(a sandwich step costs {med['largest-alone'] / med['sandwich']:.2f} largest-alone steps)"
    )
    print(f"  sandwich / largest-in-supernet = {ratio('sandwich', 'largest-in-supernet')}")
    print(f"  sandwich-bf16 / sandwich = {ratio('sandwich-bf16', 'sandwich')}")
    print(f"  sandwich-channels-last / sandwich = {ratio('sandwich-channels-last', 'sandwich')}")
    print(f"  largest-alone-channels-last / largest-alone = {ratio('largest-alone-channels-last', 'largest-alone')}")
    step_s = args.batch_size / med["sandwich"]
    print(
        f"  batch preparation {statistics.median(prep) * 1e3:.1f} ms = {100 * statistics.median(prep) / step_s:.1f}% "
        f"of a sandwich step"
    )


if __name__ == "__main__":
    main()
