"""Token mixers side by side: latency of each mixer layer at the same width and grid, on this CPU and
as a phone table predicts it.

    python bench/bench_mixers.py                      # ONNX Runtime, 1 thread, 224 px stage shapes
    python bench/bench_mixers.py --backend torch --passes 9

For each stage shape of the default space at 224 px (stage 1: 48 channels on 56x56, stage 2: 80 on
28x28, stage 3: 192 on 14x14, stage 4: 176 on 7x7) every mixer is built as the space builds it (SepViT
with its stage's heads and 7x7 windows) plus MHSA with and without stride attention where the space
does not offer it, so that all are compared on one shape. The mixer layer alone is timed (its block's
FFN is the same whichever mixer it holds). All layers of all shapes are timed interleaved in one
process (latency_lut.timing: passes of shuffled chunks, median of pass medians, interquartile spread),
so a slowdown of the machine hits every candidate alike. The last columns are the per-layer
latencies of the phone table (an estimate unless it was imported from measurements).
"""

from __future__ import annotations

import argparse

import latency_lut
import search_spaces
import supernet
from latency_lut.backends import measuring
from latency_lut.build import runner_for
from latency_lut.timing import measure_interleaved
from search_spaces import LayerSpec

#: (stage, width, grid) at 224 px; MHSA on 56x56 without stride attention is left out (a 315 MB attention map)
SHAPES = [(1, 48, 56), (2, 80, 28), (3, 192, 14), (4, 176, 7)]
MIXERS = ("mhsa", "mhsa_s2", "sepvit", "additive", "separable")


def layer_of(space: search_spaces.Space, mixer: str, stage: int, width: int, grid: int) -> LayerSpec | None:
    st = space.stages[stage - 1]
    if mixer in ("mhsa", "mhsa_s2"):
        stride = 2 if mixer == "mhsa_s2" else 1
        if stride == 1 and grid > 28:
            return None
        return LayerSpec("mhsa", width, width, grid, stride=stride, stage=stage)
    if mixer == "sepvit" and grid <= st.sepvit_window:
        return None  # one window: SepViT is plain attention there, and the space does not offer it
    return st.mixer_spec(mixer, width, grid, name="bench", stage=stage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch", "torchscript"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--passes", type=int, default=9)
    parser.add_argument("--phone", default="iphone12-coreml", help="the phone table whose per-layer figures are shown")
    args = parser.parse_args()

    space = search_spaces.load(search_spaces.DEFAULT_SPACE)
    phone = latency_lut.load(args.phone)
    specs = {}
    for stage, width, grid in SHAPES:
        for mixer in MIXERS:
            spec = layer_of(space, mixer, stage, width, grid)
            if spec is not None:
                specs[(stage, mixer)] = spec
    with measuring(args.threads):
        runners = {spec.key: runner_for(args.backend, spec, args.threads) for spec in specs.values()}
        timings = measure_interleaved(runners, passes=args.passes, seed=0)

    print(
        f"{args.backend}, {args.threads} thread(s), {args.passes} interleaved passes; phone table {phone.device} ({phone.provenance})"
    )
    header = (
        f"{'stage':<6}{'shape':<12}{'mixer':<10}{'params':>9}{'MMACs':>9}{'cpu ms':>9}{'iqr':>7}{'x sepvit':>9}{'phone ms':>10}"
    )
    print(header)
    print("-" * len(header))
    for stage, width, grid in SHAPES:
        base = specs.get((stage, "sepvit"))
        base_ms = timings[base.key].ms if base else None
        for mixer in MIXERS:
            spec = specs.get((stage, mixer))
            if spec is None:
                continue
            t = timings[spec.key]
            counts = supernet.count_layer(spec)
            ratio = f"{t.ms / base_ms:8.2f}x" if base_ms else f"{'-':>9}"
            try:
                phone_ms = f"{phone.layer_ms_of(spec):10.4f}"
            except latency_lut.LUTError:
                phone_ms = f"{'-':>10}"  # not a layer of the space (e.g. MHSA where the space has none)
            print(
                f"{stage:<6}{f'{width}x{grid}x{grid}':<12}{mixer:<10}{counts.params:>9,}{counts.macs / 1e6:>9.1f}"
                f"{t.ms:>9.3f}{t.spread_ms:>7.3f}{ratio}{phone_ms}"
            )


if __name__ == "__main__":
    main()
