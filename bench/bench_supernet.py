"""Benchmark the elastic supernet, its extracted subnets and the analytic counters.

Prints, measured in this one run (no timing is asserted):

a. the extracted standalone EfficientFormerV2-S0 against a hand-written S0 (bench/handwritten_s0.py),
   torch eager, eval, no_grad, 1 thread, batch 1, 3x224x224, interleaved rounds;
b. supernet construction time and memory (parameter + buffer bytes, process RSS increase), measured
   in a fresh child process so that nothing else in this process skews the RSS figures;
c. the supernet's forward with a subnet active against the same subnet extracted (largest subnet at
   its resolution, and S0), interleaved: the cost of slicing shared weights at run time;
d. analytic counting throughput (``supernet.count``) over freshly sampled architectures (cold) and
   over architectures already counted (warm).

The machine is shared and timings swing by 30-50% in episodes: every comparison is interleaved
(A B, then B A, round after round), each round's median is kept, and the report gives the median
of round medians with its spread (IQR and min-max) and the median of the per-round ratios.

    python bench/bench_supernet.py                 # default run, about 2 minutes
    python bench/bench_supernet.py --rounds 40 --iters 50 --large-rounds 20 --count-archs 50000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from handwritten_s0 import S0_PARAMS, EfficientFormerV2S0, num_params  # noqa: E402

import search_spaces  # noqa: E402
import supernet  # noqa: E402

SPACE = "efficientformerv2"


# ---- statistics and timing ------------------------------------------------------------------------
def summarize(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    else:
        q1 = q3 = v[0]
    return {"median": statistics.median(v), "q1": q1, "q3": q3, "min": v[0], "max": v[-1], "n": len(v)}


def fmt_ms(s: dict[str, float]) -> str:
    return f"{s['median']:8.2f} ms  IQR {s['q1']:.2f}-{s['q3']:.2f}  min-max {s['min']:.2f}-{s['max']:.2f}  ({s['n']} rounds)"


def fmt_ratio(s: dict[str, float]) -> str:
    return f"{s['median']:.3f}  IQR {s['q1']:.3f}-{s['q3']:.3f}  min-max {s['min']:.3f}-{s['max']:.3f}"


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, iters: int, warmup: int) -> dict[str, list[float]]:
    """Per-round median (ms) of `iters` timed calls of each function; the order alternates by round."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    medians: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, times = fns[name], []
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            medians[name].append(statistics.median(times) * 1e3)
    return medians


def compare(label_a: str, label_b: str, meds: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Print both timings and the per-round ratio a/b; return their summaries."""
    a, b = summarize(meds[label_a]), summarize(meds[label_b])
    ratio = summarize([x / y for x, y in zip(meds[label_a], meds[label_b])])
    width = max(len(label_a), len(label_b))
    print(f"  {label_a:<{width}}  {fmt_ms(a)}")
    print(f"  {label_b:<{width}}  {fmt_ms(b)}")
    print(f"  ratio {label_a} / {label_b}: median of medians {a['median'] / b['median']:.3f}; per-round ratio {fmt_ratio(ratio)}")
    return {"a": a, "b": b, "ratio": ratio}


# ---- memory ----------------------------------------------------------------------------------------
def proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def tensor_bytes(module: torch.nn.Module) -> tuple[int, int, int, int]:
    params = list(module.parameters())
    buffers = list(module.buffers())
    return (
        sum(p.numel() for p in params),
        sum(p.numel() * p.element_size() for p in params),
        sum(b.numel() for b in buffers),
        sum(b.numel() * b.element_size() for b in buffers),
    )


def build_probe(repeats: int) -> None:
    """Child-process mode: time supernet.build and measure RSS; print one JSON line."""
    gc.collect()
    rss0, hwm0 = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
    t0 = time.perf_counter()
    net = supernet.build(SPACE)
    first = time.perf_counter() - t0
    rss1, hwm1 = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
    n_par, b_par, n_buf, b_buf = tensor_bytes(net)
    warm = []
    for _ in range(repeats):
        del net
        gc.collect()
        t0 = time.perf_counter()
        net = supernet.build(SPACE)
        warm.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "first_s": first,
                "warm_s": warm,
                "rss_before_kib": rss0,
                "rss_after_kib": rss1,
                "hwm_before_kib": hwm0,
                "hwm_after_kib": hwm1,
                "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "params": n_par,
                "param_bytes": b_par,
                "buffers": n_buf,
                "buffer_bytes": b_buf,
                "slots": len(net.slots),
                "layers": sum(len(v) for v in net.slots.values()),
            }
        )
    )


# ---- weights: our extracted S0 -> the hand-written S0 -------------------------------------------------
def our_name_to_handwritten(name: str) -> str:
    """Map a key of our extracted S0's state dict to the hand-written model's key."""
    name = name.removeprefix("layers.")
    conv_bn = {"conv": "0", "bn": "1"}

    def seq(rest: str) -> str:  # conv_bn(...) Sequential(conv, bn) -> Sequential(0, 1)
        part, _, tail = rest.partition(".")
        return f"{conv_bn.get(part, part)}.{tail}" if tail else part

    if name.startswith("stem."):
        sub, _, rest = name[5:].partition(".")
        part, _, tail = rest.partition(".")
        idx = {("conv1", "conv"): 0, ("conv1", "bn"): 1, ("conv2", "conv"): 3, ("conv2", "bn"): 4}[(sub, part)]
        return f"stem.{idx}.{tail}"
    if name.startswith("head."):
        rest = name[5:]
        return rest  # norm.*, head.*, dist_head.*
    m = re.match(r"stage(\d)_down\.(.*)$", name)
    if m:
        s, rest = int(m.group(1)), m.group(2)
        prefix = f"stages.{s - 1}.0"
        sub, _, tail = rest.partition(".")
        if sub == "conv":
            return f"{prefix}.conv.{seq(tail)}"
        if sub == "q_local":
            return f"{prefix}.attn.q.local.{tail}"
        if sub == "q_proj":
            return f"{prefix}.attn.q.proj.{seq(tail)}"
        if sub == "bias":
            return f"{prefix}.attn.attention_biases"
        if sub == "proj":
            part, _, t = tail.partition(".")
            return f"{prefix}.attn.proj.{ {'conv': '1', 'bn': '2'}[part] }.{t}"
        return f"{prefix}.attn.{sub}.{seq(tail)}"
    m = re.match(r"stage(\d)_block(\d+)_(mixer|ffn)\.(.*)$", name)
    if not m:
        raise KeyError(name)
    s, i, what, rest = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
    block = f"stages.{s - 1}.{i + (1 if s > 1 else 0)}"
    sub, _, tail = rest.partition(".")
    if what == "ffn":
        return f"{block}.layer_scale_2" if sub == "layer_scale" else f"{block}.mlp.{sub}.{seq(tail)}"
    if sub == "layer_scale":
        return f"{block}.layer_scale_1"
    if sub == "bias":
        return f"{block}.token_mixer.attention_biases"
    if sub.startswith("talking_head"):
        return f"{block}.token_mixer.{sub}.{tail}"
    if sub == "proj":
        part, _, t = tail.partition(".")
        return f"{block}.token_mixer.proj.{ {'conv': '1', 'bn': '2'}[part] }.{t}"
    return f"{block}.token_mixer.{sub}.{seq(tail)}"


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Give every zero/one-initialised tensor (BN, layer scale, attention bias) random values so an
    output comparison exercises them."""
    g = torch.Generator().manual_seed(seed)
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        elif name.endswith("layer_scale"):
            t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5)
        elif name.endswith("attention_biases"):
            t.copy_(torch.randn(t.shape, generator=g))
        elif name.endswith("running_mean") or ".bn." in name:
            t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith("bn.weight") else 0.0))


@torch.no_grad()
def load_into_handwritten(hw: torch.nn.Module, ours: torch.nn.Module) -> int:
    target = hw.state_dict()
    state = {}
    for name, t in ours.state_dict().items():
        key = our_name_to_handwritten(name)
        if key not in target or target[key].numel() != t.numel():
            raise KeyError(f"{name} -> {key}: no matching tensor")
        state[key] = t.reshape(target[key].shape).clone()
    missing = [k for k in target if k not in state and not k.endswith("attention_bias_idxs")]
    if missing:
        raise KeyError(f"not loaded: {missing[:5]}")
    hw.load_state_dict(state, strict=False)
    hw.train(hw.training)  # refresh the cached eval bias
    return len(state)


# ---- sections ---------------------------------------------------------------------------------------
def section_a(args, space, net, summary) -> None:
    print("\n== a. extracted S0 vs hand-written S0 (eager, eval, no_grad, 1 thread, batch 1, 224) ==")
    s0 = space.preset("s0")
    ours = net.extract(s0).eval()
    hw = EfficientFormerV2S0().eval()
    n_ours, n_hw = num_params(ours), num_params(hw)
    print(
        f"  params: ours {n_ours:,}, hand-written {n_hw:,} (expected {S0_PARAMS:,}): "
        f"{'OK' if n_ours == n_hw == S0_PARAMS else 'MISMATCH'}; count(): {supernet.count(s0).params:,}"
    )
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed))
    try:
        randomize_(ours, args.seed)
        n = load_into_handwritten(hw, ours)
        with torch.no_grad():
            diff = (ours(x) - hw(x)).abs().max().item()
        print(
            f"  weights: {n} tensors of our extracted S0 loaded into the hand-written S0; "
            f"max |output difference| {diff:.3g} (same weights in both timed models)"
        )
        summary["a.output_max_abs_diff"] = f"{diff:.3g}"
    except (KeyError, RuntimeError) as exc:
        print(f"  weights: not shared ({exc}); both models keep their own initialisation")
        summary["a.output_max_abs_diff"] = "n/a"
    with torch.no_grad():
        meds = interleaved({"extracted": lambda: ours(x), "handwritten": lambda: hw(x)}, args.rounds, args.iters, args.warmup)
    print(f"  {args.rounds} rounds x {args.iters} iterations (after {args.warmup} warm-up calls each)")
    r = compare("extracted", "handwritten", meds)
    summary["a.s0_extracted_ms"] = f"{r['a']['median']:.2f} (IQR {r['a']['q1']:.2f}-{r['a']['q3']:.2f})"
    summary["a.s0_handwritten_ms"] = f"{r['b']['median']:.2f} (IQR {r['b']['q1']:.2f}-{r['b']['q3']:.2f})"
    summary["a.ratio_extracted/handwritten"] = (
        f"{r['a']['median'] / r['b']['median']:.3f} "
        f"(per-round median {r['ratio']['median']:.3f}, "
        f"min-max {r['ratio']['min']:.3f}-{r['ratio']['max']:.3f})"
    )


def section_b(args, summary) -> None:
    print('\n== b. supernet construction: supernet.build("efficientformerv2"), fresh child process ==')
    out = subprocess.run(
        [sys.executable, __file__, "--_build-probe", str(args.build_repeats)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        print("  build probe failed:\n" + out.stderr[-2000:])
        summary["b.build"] = "failed"
        return
    p = json.loads(out.stdout.strip().splitlines()[-1])
    mib = 1024 * 1024
    warm = summarize(p["warm_s"]) if p["warm_s"] else None
    rss_inc = (p["rss_after_kib"] - p["rss_before_kib"]) / 1024
    hwm_inc = (p["hwm_after_kib"] - p["hwm_before_kib"]) / 1024
    tensor_mib = (p["param_bytes"] + p["buffer_bytes"]) / mib
    print(f"  {p['slots']} slots holding {p['layers']} full-size layers")
    print(
        f"  parameters {p['params']:,} ({p['param_bytes'] / mib:.1f} MiB), buffers {p['buffers']:,} "
        f"({p['buffer_bytes'] / mib:.2f} MiB): {tensor_mib:.1f} MiB of tensors"
    )
    print(f"  first build (space YAML loaded, caches cold): {p['first_s']:.3f} s")
    if warm:
        print(f"  later builds ({warm['n']}): median {warm['median']:.3f} s, min-max {warm['min']:.3f}-{warm['max']:.3f} s")
    print(
        f"  RSS {p['rss_before_kib'] / 1024:.1f} -> {p['rss_after_kib'] / 1024:.1f} MiB (+{rss_inc:.1f} MiB) over the "
        f"first build; peak RSS +{hwm_inc:.1f} MiB; RSS increase / tensor bytes = {rss_inc / tensor_mib:.2f}"
    )
    summary["b.build_first_s"] = f"{p['first_s']:.3f}"
    if warm:
        summary["b.build_warm_s"] = f"{warm['median']:.3f} (min-max {warm['min']:.3f}-{warm['max']:.3f}, n={warm['n']})"
    summary["b.params"] = f"{p['params']:,}"
    summary["b.param+buffer_MiB"] = f"{tensor_mib:.1f}"
    summary["b.rss_increase_MiB"] = f"{rss_inc:.1f} (peak +{hwm_inc:.1f})"


def section_c(args, space, net, summary) -> None:
    print("\n== c. supernet with a subnet active vs the same subnet extracted (eval, no_grad, 1 thread, batch 1) ==")
    cases = [
        ("largest", space.largest(), args.large_rounds, args.large_iters),
        ("s0", space.preset("s0"), args.rounds, args.iters),
    ]
    for label, arch, rounds, iters in cases:
        res = arch.resolution
        x = torch.randn(1, 3, res, res, generator=torch.Generator().manual_seed(args.seed))
        model = net.extract(arch).eval()
        with torch.no_grad():
            net.set_active(arch)
            diff = (net(x) - model(x)).abs().max().item()
            c = supernet.count(arch)
            print(
                f"  [{label}] {arch}  {c.params / 1e6:.2f}M params, {c.macs / 1e9:.3f} GMACs at {res}; "
                f"max |active - extracted| = {diff:.3g}; {rounds} rounds x {iters} iterations"
            )
            meds = interleaved(
                {"supernet-active": lambda n=net, x=x: n(x), "extracted": lambda m=model, x=x: m(x)},
                rounds,
                iters,
                max(1, min(args.warmup, iters)),
            )
        r = compare("supernet-active", "extracted", meds)
        summary[f"c.{label}_supernet_active_ms"] = f"{r['a']['median']:.2f} (IQR {r['a']['q1']:.2f}-{r['a']['q3']:.2f})"
        summary[f"c.{label}_extracted_ms"] = f"{r['b']['median']:.2f} (IQR {r['b']['q1']:.2f}-{r['b']['q3']:.2f})"
        summary[f"c.{label}_slicing_overhead_ratio"] = (
            f"{r['a']['median'] / r['b']['median']:.3f} (per-round median {r['ratio']['median']:.3f}, "
            f"min-max {r['ratio']['min']:.3f}-{r['ratio']['max']:.3f}; "
            f"+{r['a']['median'] - r['b']['median']:.2f} ms)"
        )
        summary[f"c.{label}_max_abs_diff"] = f"{diff:.3g}"


def section_d(args, space, summary) -> None:
    print(f"\n== d. analytic counting: supernet.count(arch), {args.count_archs:,} distinct sampled architectures per pass ==")
    from search_spaces import space as space_module

    rng = random.Random(args.seed)
    seen: set = set()

    def fresh(n: int) -> list:
        archs = []
        while len(archs) < n:
            a = space.sample(rng)
            if a not in seen:
                seen.add(a)
                archs.append(a)
        return archs

    t0 = time.perf_counter()
    batches = iter([fresh(args.count_archs) for _ in range(4 * args.count_repeats)])
    print(
        f"  sampled {4 * args.count_repeats * args.count_archs:,} distinct architectures in "
        f"{time.perf_counter() - t0:.2f} s (sampling is not timed below)"
    )

    def rate(archs: list, collect: bool) -> float:
        if not collect:
            gc.disable()
        try:
            t0 = time.perf_counter()
            for a in archs:
                supernet.count(a)
            return len(archs) / (time.perf_counter() - t0)
        finally:
            gc.enable()

    rows: dict[str, list[float]] = {}
    for r in range(args.count_repeats):
        for collect in (True, False) if r % 2 == 0 else (False, True):
            tag = "gc on" if collect else "gc off"
            space_module._layers.cache_clear()
            supernet.count_layer.cache_clear()
            gc.collect()
            # 1. never-seen architectures, every cache empty (arch -> layer specs, spec -> counts)
            rows.setdefault(f"cold, caches empty, {tag}", []).append(rate(next(batches), collect))
            # 2. never-seen architectures after one pass: per-spec counts cached, as in a running search
            second = next(batches)
            rows.setdefault(f"cold archs, spec counts cached, {tag}", []).append(rate(second, collect))
            # 3. the same architectures again: arch.layers() (LRU, 65,536 archs) and spec counts cached
            rows.setdefault(f"warm (repeat), {tag}", []).append(rate(second, collect))
    order = [
        f"{kind}, {tag}"
        for kind in ("cold, caches empty", "cold archs, spec counts cached", "warm (repeat)")
        for tag in ("gc on", "gc off")
    ]
    width = max(map(len, order))
    for label in order:
        s = summarize(rows[label])
        print(f"  {label:<{width}} {s['median']:>10,.0f} archs/s  (min-max {s['min']:,.0f}-{s['max']:,.0f}, {s['n']} passes)")
    print(
        f"  distinct layer specs met since the last reset: {supernet.count_layer.cache_info().currsize:,}; "
        "'gc off' shows how much of the cold cost is the cyclic garbage collector"
    )
    keys = {
        "cold, caches empty, gc on": "d.count_cold_archs_per_s",
        "cold archs, spec counts cached, gc on": "d.count_cold_spec_cached_archs_per_s",
        "cold, caches empty, gc off": "d.count_cold_gc_off_archs_per_s",
        "warm (repeat), gc on": "d.count_warm_archs_per_s",
    }
    for label, key in keys.items():
        v = rows[label]
        summary[key] = f"{statistics.median(v):,.0f} (min-max {min(v):,.0f}-{max(v):,.0f}, n={len(v)})"

    # 4. vectorised: params and MACs of an encoded gene matrix through the space's per-gene cost tables
    import numpy as np

    t0 = time.perf_counter()
    tables = supernet.count_tables(space)
    setup_s = time.perf_counter() - t0
    codes = np.array([space.encode(a) for a in fresh(args.count_archs)], dtype=np.int64)
    big = np.repeat(codes, 10, axis=0)
    rates = []
    for _ in range(args.count_repeats + 2):
        t0 = time.perf_counter()
        for table in tables.values():
            table.total(big)
        rates.append(len(big) / (time.perf_counter() - t0))
    check = tables["params"].total(codes[:200])[0].tolist() == [supernet.count(space.decode(c)).params for c in codes[:200]]
    s = summarize(rates)
    print(
        f"  vectorised (params and MACs of a gene matrix, cost tables built in {setup_s:.2f} s): "
        f"{s['median']:>10,.0f} archs/s (min-max {s['min']:,.0f}-{s['max']:,.0f}); equal to supernet.count: {check}"
    )
    summary["d.count_vectorised_archs_per_s"] = f"{s['median']:,.0f} (params+MACs; tables built in {setup_s:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds for S0 timings (default 15)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per round for S0 (default 20)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up calls per model (default 10)")
    parser.add_argument("--large-rounds", type=int, default=9, help="interleaved rounds for the largest subnet (default 9)")
    parser.add_argument("--large-iters", type=int, default=4, help="iterations per round for the largest subnet (default 4)")
    parser.add_argument("--build-repeats", type=int, default=3, help="extra supernet builds timed after the first (default 3)")
    parser.add_argument("--count-archs", type=int, default=20000, help="architectures per counting pass (default 20000)")
    parser.add_argument("--count-repeats", type=int, default=3, help="counting passes of each kind (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sections", default="abcd", help="which sections to run, e.g. 'ac' (default abcd)")
    parser.add_argument("--_build-probe", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._build_probe is not None:
        build_probe(args._build_probe)
        return

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    started = time.perf_counter()
    summary: dict[str, str] = {}
    space = search_spaces.load(SPACE)
    net = supernet.build(space).eval() if set(args.sections) & set("ac") else None
    if "a" in args.sections:
        section_a(args, space, net, summary)
    if "b" in args.sections:
        section_b(args, summary)
    if "c" in args.sections:
        section_c(args, space, net, summary)
    if "d" in args.sections:
        section_d(args, space, summary)
    print(f"\n== summary (torch {torch.__version__}, {args.threads} thread(s), total {time.perf_counter() - started:.0f} s) ==")
    width = max(map(len, summary), default=0)
    for k, v in summary.items():
        print(f"{k:<{width}}: {v}")


if __name__ == "__main__":
    main()
