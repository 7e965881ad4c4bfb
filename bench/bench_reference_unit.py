"""Which reference unit keeps a table true when the machine's speed moves: one preset, or several?

python bench/bench_reference_unit.py --out bench/results/reference_unit_onnxruntime.json   (~12 min)

A table keeps its timings relative to a reference timed in the same passes, so that a change of the
machine's speed between building and validating cancels. On this VM a fitted table still lost 2-8% as a
uniform bias between its build and a validation minutes later (bench_lut_fit, run 2: 94-98% of the
held-out subnets within +-10% once that bias is removed, 74-92% with it): the reference itself moved
against the rest. This bench measures whether a unit made of several references (the geometric mean of
the space's presets, S0 to L, timed in every pass) moves less than S0 alone.

This process is pinned to CPU 0. Every model is prepared once: N chosen fit models, M held-out random
subnets and the presets. Then R rounds time all of them interleaved (7 passes each), alternately quiet
and with a busy process (single-threaded matrix products) on CPU 1. For every ordered pair of rounds
(build in one, validate in another) and every unit, the cost model is fitted to the build round's fit
models in that unit and scored on the validation round's held-out subnets in the same unit: share within
+-10%, MAPE, mean signed error. The units are computed from the same pass medians, so they are compared
on identical timings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_lut_drift import busy_other_core, pin_to_first_cpu  # noqa: E402

import search_spaces  # noqa: E402
from latency_lut import costmodel  # noqa: E402
from latency_lut.backends import measuring  # noqa: E402
from latency_lut.build import runner_for  # noqa: E402
from latency_lut.fitting import choose_models  # noqa: E402
from latency_lut.host import host_description  # noqa: E402
from latency_lut.timing import measure_interleaved, reference_unit  # noqa: E402


def units(space: search_spaces.Space) -> dict[str, list[str]]:
    """The candidate units: each preset alone, and the geometric mean of them all."""
    names = [f"preset:{name}" for name in space.preset_names]
    return {**{name: [name] for name in names}, "geometric mean of the presets": names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="efficientformerv2")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--fit", type=int, default=20)
    parser.add_argument("--held-out", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    pin_to_first_cpu()
    space = search_spaces.load(args.space)
    if len(space.preset_names) < 2:
        parser.error(f"space {space.name!r} has {len(space.preset_names)} presets; the units compared need at least two")
    fit = choose_models(space, args.fit)
    rng, seen = random.Random(12345), {a.id for a in fit}
    held: list[search_spaces.Arch] = []
    while len(held) < args.held_out:
        arch = space.sample(rng)
        if arch.id not in seen:
            seen.add(arch.id)
            held.append(arch)
    models = {f"fit:{i}": a for i, a in enumerate(fit)} | {f"held:{i}": a for i, a in enumerate(held)}
    models |= {f"preset:{name}": space.preset(name) for name in space.preset_names}
    rounds: list[dict] = []
    with measuring(1):
        started = time.perf_counter()
        runners = {key: runner_for(args.backend, arch, 1) for key, arch in models.items()}
        print(f"prepared {len(runners)} models in {time.perf_counter() - started:.0f} s", flush=True)
        for r in range(args.rounds):
            condition = "busy" if r % 2 else "quiet"
            with busy_other_core(condition == "busy"):
                timings = measure_interleaved(runners, passes=args.passes, seed=r)
            rounds.append({"condition": condition, "pass_ms": {key: t.pass_ms for key, t in timings.items()}})
            print(f"round {r} ({condition}): S0 {timings['preset:' + space.preset_names[0]].ms:.2f} ms", flush=True)
    x_fit = np.array([costmodel.arch_features(a) for a in fit])
    x_held = np.array([costmodel.arch_features(a) for a in held])

    def ratios(rnd: dict, prefix: str, count: int, refs: list[str]) -> np.ndarray:
        unit = reference_unit([rnd["pass_ms"][k] for k in refs])
        return np.array([np.median(np.array(rnd["pass_ms"][f"{prefix}:{i}"]) / unit) for i in range(count)])

    report: dict = {"host": host_description(), "space": space.name, "backend": args.backend, "units": {}, "rounds": rounds}
    report["models"] = {key: arch.to_dict() for key, arch in models.items()}
    print(f"\n{report['host']}; {len(fit)} fit models, {len(held)} held out, {args.rounds} rounds; every ordered pair of rounds")
    print(f"{'unit':32s} {'within10% median [min, max]':>30s} {'MAPE%':>6s} {'|bias|% median':>15s} {'same round':>11s}")
    for name, refs in units(space).items():
        pairs, same = [], []
        for i, j in itertools.product(range(args.rounds), repeat=2):
            model = costmodel.fit_cost_model(x_fit, ratios(rounds[i], "fit", len(fit), refs))
            err = model.predict(x_held) / ratios(rounds[j], "held", len(held), refs) - 1
            row = {
                "build": i,
                "validate": j,
                "within_10_pct": float(np.mean(np.abs(err) <= 0.10) * 100),
                "mape_pct": float(np.mean(np.abs(err)) * 100),
                "bias_pct": float(np.mean(err) * 100),
            }
            (same if i == j else pairs).append(row)
        within = np.array([p["within_10_pct"] for p in pairs])
        mape = np.median([p["mape_pct"] for p in pairs])
        bias = np.median([abs(p["bias_pct"]) for p in pairs])
        same_within = np.median([p["within_10_pct"] for p in same])
        report["units"][name] = {"references": refs, "pairs": pairs, "same_round": same}
        print(
            f"{name:32s} {np.median(within):10.0f}% [{within.min():3.0f}, {within.max():3.0f}]          "
            f"{mape:6.2f} {bias:15.2f} {same_within:10.0f}%"
        )
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
