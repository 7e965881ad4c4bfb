"""Workers sharing one study on PostgreSQL: trials per second of N workers against one, in one run.

    python bench/bench_shared.py                       # 3 workers vs 1, 60 trials, NASWOT, 3 rounds
    python bench/bench_shared.py --workers 3 --trials 90 --proxy params --rounds 5

A temporary PostgreSQL server (nas.search.local_postgres) holds a fresh study per measurement. Each
measurement starts its workers as separate `nas search` processes at once on the same --trials total
(on efficientformerv2-tiny, evolution) and times them from the first start to the last exit, Python's
start-up included (about 2 s a process here). One worker and N workers alternate, round after round;
the script prints the median and the spread of trials per second and their ratio. On this machine's two
cores, the ratio is bounded by 2 however many workers start.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.search.local_postgres import temporary_postgres, unavailable_reason  # noqa: E402


def run_workers(url: str, study: str, workers: int, trials: int, proxy: str, out: Path) -> float:
    """Seconds for `workers` processes to finish a shared study of `trials` trials."""
    argv = [sys.executable, "-m", "nas", "search", "--space", "efficientformerv2-tiny", "--device", "iphone12-coreml"]
    argv += ["--budget", "params=2.5M", "--proxy", proxy, "--trials", str(trials), "--population", "20"]
    argv += ["--storage", url, "--study", study, "-q"]
    start = time.perf_counter()
    procs = [
        subprocess.Popen([*argv, "--out", str(out / f"{study}-{i}")], cwd=ROOT, stdout=subprocess.DEVNULL) for i in range(workers)
    ]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"a worker failed (exit codes {codes})")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--proxy", default="naswot", choices=("naswot", "synflow", "params"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"bench_shared: {reason}")
    times: dict[int, list[float]] = {1: [], args.workers: []}
    with temporary_postgres() as url, tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for n in (1, args.workers):
                times[n].append(run_workers(url, f"r{r}-w{n}", n, args.trials, args.proxy, Path(tmp)))
    print(f"{args.trials} trials of efficientformerv2-tiny (evolution, --proxy {args.proxy}), {args.rounds} rounds, PostgreSQL")
    rates = {}
    for n, seconds in times.items():
        per_s = [args.trials / s for s in seconds]
        rates[n] = statistics.median(per_s)
        print(
            f"{n} worker(s): {rates[n]:.2f} trials/s (median; {min(per_s):.2f} to {max(per_s):.2f}), "
            f"wall {statistics.median(seconds):.1f} s"
        )
    print(f"ratio {args.workers} workers / 1: {rates[args.workers] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
