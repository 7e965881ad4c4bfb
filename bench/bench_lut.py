"""Latency-table benchmarks: vectorised prediction against one-at-a-time, and table build time.

python bench/bench_lut.py                 # prediction throughput + build time of the tiny space
python bench/bench_lut.py --full-build    # also time a full build of the default space (~8 min)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import latency_lut


def throughput(fn, n: int, repeats: int) -> tuple[float, float, float]:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="ci-cpu-onnxruntime")
    parser.add_argument("--archs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--full-build", action="store_true")
    args = parser.parse_args()

    lut = latency_lut.load(args.device)
    space = lut.space
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(args.archs)]
    codes = np.array([space.encode(a) for a in archs], dtype=np.int64)
    lut.predict_codes(codes[:10])  # builds the per-gene tables once
    big = np.repeat(codes, 10, axis=0)

    vec = throughput(lambda: lut.predict_codes(big), len(big), args.repeats)
    many = throughput(lambda: lut.predict_many(archs), len(archs), args.repeats)
    sub = archs[: min(len(archs), 5000)]
    one = throughput(lambda: [lut.predict(a) for a in sub], len(sub), args.repeats)
    check = np.abs(lut.predict_codes(codes[:500]) - np.array([lut.predict(a) for a in archs[:500]])).max()
    print(f"table {lut.device} ({lut.backend}), space {space.name}, {len(lut.entries)} entries")
    print(f"vectorised predict_codes (gene matrix): {vec[0]:>12,.0f} archs/s (min-max {vec[1]:,.0f}-{vec[2]:,.0f})")
    print(f"predict_many (Arch objects, encodes) : {many[0]:>12,.0f} archs/s (min-max {many[1]:,.0f}-{many[2]:,.0f})")
    print(f"one at a time predict(arch) (warm)   : {one[0]:>12,.0f} archs/s (min-max {one[1]:,.0f}-{one[2]:,.0f})")
    print(f"ratio vectorised / one-at-a-time     : {vec[0] / one[0]:.0f}x   (max abs difference {check:.2e} ms)")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        tiny = latency_lut.build_lut("efficientformerv2-tiny", "bench-tiny", lut.backend, Path(tmp) / "t.json")
        tiny_s = time.perf_counter() - start
        print(f"build of efficientformerv2-tiny ({len(tiny.entries)} keys, {lut.backend}): {tiny_s:.1f} s")
        if args.full_build:
            start = time.perf_counter()
            full = latency_lut.build_lut("efficientformerv2", "bench-full", lut.backend, Path(tmp) / "f.json")
            print(f"build of efficientformerv2 ({len(full.entries)} keys, {lut.backend}): {time.perf_counter() - start:.0f} s")
    print(
        f"summary: vectorised_archs_per_s={vec[0]:.0f} one_at_a_time_archs_per_s={one[0]:.0f} "
        f"ratio={vec[0] / one[0]:.0f} tiny_build_s={tiny_s:.1f}"
    )


if __name__ == "__main__":
    main()
