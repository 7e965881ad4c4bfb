"""Does a table survive a sustained change of background load? Built quiet, validated quiet and busy.

python bench/bench_lut_drift.py                       # tiny space, ONNX Runtime, 1 thread (~5 min)
python bench/bench_lut_drift.py --space efficientformerv2 --samples 50   # the default space (~15 min)

This process is pinned to CPU 0. The table is built with nothing else running; it is validated once
quiet, then again while a busy process (single-threaded matrix products, pinned to CPU 1) holds the
other core, then quiet again. Each validation reports the table's figures in units of its reference
model (timed in the same passes) and in the moment's milliseconds, so the two can be compared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import latency_lut  # noqa: E402
from latency_lut.host import host_description  # noqa: E402
from latency_lut.validate import validate  # noqa: E402

BUSY = (
    "import os, numpy as np\n"
    "os.sched_setaffinity(0, {1})\n"
    "a = np.random.rand(600, 600)\n"
    "while True:\n"
    "    a = a @ a; a /= np.abs(a).max()\n"
)


def pin_to_first_cpu() -> None:
    """Run this process on CPU 0 only, leaving CPU 1 to the busy process."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})


@contextlib.contextmanager
def busy_other_core(busy: bool = True) -> Iterator[None]:
    """While inside, a process of single-threaded matrix products holds CPU 1 (nothing when not `busy`)."""
    if not busy:
        yield
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-c", BUSY], env=env)
    time.sleep(3)
    try:
        yield
    finally:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="efficientformerv2-tiny")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the report here (JSON)")
    args = parser.parse_args()
    pin_to_first_cpu()
    report: dict = {"host": host_description(), "space": args.space, "backend": args.backend, "validations": {}}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        lut = latency_lut.build_lut(args.space, "drift", args.backend, Path(tmp) / "t.json", threads=1, passes=args.passes)
        report["build_s"] = round(time.perf_counter() - started, 1)
        print(f"built in {report['build_s']:.0f} s; reference {lut.meta['provenance']['reference']['ms']:.3f} ms", flush=True)
        for phase in ("quiet", "busy", "quiet again"):
            with busy_other_core(phase == "busy"):
                r = validate(lut, samples=args.samples, seed=1, passes=args.passes)
            row = {
                "within_10pct": r["within_10pct"],
                "mape": r["mape"],
                "kendall_tau": r["kendall_tau"],
                "raw_within_10pct": r["raw_within_10pct"],
                "raw_mape": r["raw_mape"],
                "speed_now": r["reference"]["speed_now"],
            }
            report["validations"][phase] = row
            print(
                f"{phase:12s} reference units: {row['within_10pct'] * 100:5.1f}% within ±10%, MAPE {row['mape'] * 100:5.2f}%, "
                f"tau {row['kendall_tau']:.3f} | moment's ms: {row['raw_within_10pct'] * 100:5.1f}%, MAPE "
                f"{row['raw_mape'] * 100:5.2f}% | speed now {row['speed_now']:.3f}x",
                flush=True,
            )
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
