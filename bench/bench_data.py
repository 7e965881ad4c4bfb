"""Data throughput of ImageFolder training: what decoding costs, and whether the loader keeps its
DataLoader workers busy.

Writes an ImageFolder of JPEG files the size of typical ImageNet photos (500 x 375 by default) into a
temporary directory, then times, in interleaved rounds (medians and spread of the rounds):
- ``decode``: Pillow decoding and resizing to the training resolution, one image after another in this
  process (the work of one worker, nothing else);
- ``prepare``: the batch preparation of the training process (crop, flip, resize, normalise) on decoded
  batches;
- ``loader-wN``: whole training batches from ``nas.train.data.Loader`` with N worker processes (one
  persistent ``FileDecoder``, as ``nas train`` uses), decoding and preparation together.
The loader's efficiency is its rate over N times the single-process decoding rate (1.0: every worker
busy all the time, the training process never the bottleneck).

    python bench/bench_data.py [--images 512] [--resolution 224] [--workers 1 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nas.train.data import FileDecoder, Loader, _Files, draw_crops, load_data, prepare


def write_folder(root: Path, images: int, size: tuple[int, int], classes: int = 8) -> None:
    """`images` JPEG photos-like files (smooth colour fields with noise) in `classes` class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(images + classes):  # the last `classes` images: one per class for val/
        folder = root / ("train" if i < images else "val") / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        phase = rng.uniform(0, 6.3, 3)
        base = np.stack([128 + 100 * np.sin(xx / (20 + 10 * c) + yy / 37 + phase[c]) for c in range(3)], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, nargs=2, default=[500, 375], metavar=("W", "H"))
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, root: Path) -> None:
    write_folder(root, args.images, tuple(args.size))
    data = load_data(str(root))
    n = len(data.train)
    files = _Files(data.train, args.resolution)
    decoders = {w: FileDecoder(data.train, args.resolution, w) for w in args.workers}

    def loader(workers: int) -> Loader:
        return Loader(
            data, "train", resolution=args.resolution, batch_size=args.batch_size, train=True, decoder=decoders[workers]
        )

    for w in args.workers:  # warm-up: start the workers, fill the page cache
        for _ in loader(w):
            pass
    decoded = [files[i][0] for i in range(min(n, 4 * args.batch_size))]
    batches = [torch.stack(decoded[i : i + args.batch_size]) for i in range(0, len(decoded), args.batch_size)]
    rates: dict[str, list[float]] = {"decode": [], "prepare": [], **{f"loader-w{w}": [] for w in args.workers}}
    for _ in range(args.rounds):
        start = time.perf_counter()
        for i in range(n):
            files[i]
        rates["decode"].append(n / (time.perf_counter() - start))
        start = time.perf_counter()
        for i, batch in enumerate(batches):
            crops = draw_crops(len(batch), args.resolution, torch.Generator().manual_seed(i))
            prepare(batch, data, args.resolution, crops)
        rates["prepare"].append(len(decoded) / (time.perf_counter() - start))
        for w in args.workers:
            start = time.perf_counter()
            count = sum(len(y) for _, y in loader(w))
            rates[f"loader-w{w}"].append(count / (time.perf_counter() - start))

    print(
        f"{n} JPEG files {args.size[0]}x{args.size[1]} -> {args.resolution} px, batch {args.batch_size}, "
        f"{args.rounds} rounds (median img/s, min-max)"
    )
    med = {k: statistics.median(v) for k, v in rates.items()}
    for name, values in rates.items():
        print(f"  {name:<10} {med[name]:8.1f} img/s  ({min(values):.1f}-{max(values):.1f})")
    for w in args.workers:
        print(f"  loader-w{w} / ({w} x decode) = {med[f'loader-w{w}'] / (w * med['decode']):.2f}")
    decode_share = med["prepare"] / (med["decode"] + med["prepare"])  # time per image is 1 / rate
    print(f"  decoding is {100 * decode_share:.0f}% of the per-image work, preparation {100 * (1 - decode_share):.0f}%")
    for decoder in decoders.values():
        decoder.close()


if __name__ == "__main__":
    main()
