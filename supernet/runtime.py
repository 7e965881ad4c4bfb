"""Process-wide torch settings that timing, training and proxies change for a while, restored after.

``torch.set_num_threads`` and ``torch.set_flush_denormal`` are global: a latency build that asks for one
thread, or a training that flushes denormals, must not leave them changed for the code that runs next
in the same process (a notebook, the tests). Torch has no getter for denormal flushing, so the state
this module sets is tracked here (it starts as torch's default, off).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

_flush_denormal = False  # torch's default; every change in this process goes through torch_settings


@contextmanager
def torch_settings(*, threads: int | None = None, flush_denormal: bool | None = None) -> Iterator[None]:
    """Run the body with `threads` intra-op threads and/or denormal flushing, then restore both.

    Denormals (floats below ~1e-38) are many times slower on x86; layer scales start at 1e-5, so
    training and timing flush them to zero. Thread counts change scores and timings (a fixed count
    keeps both reproducible)."""
    global _flush_denormal
    threads_before, flush_before = torch.get_num_threads(), _flush_denormal
    try:
        if threads is not None and threads != threads_before:
            torch.set_num_threads(threads)
        if flush_denormal is not None and flush_denormal != flush_before:
            if torch.set_flush_denormal(flush_denormal):  # False: not supported on this CPU, nothing changed
                _flush_denormal = flush_denormal
        yield
    finally:
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
        if _flush_denormal != flush_before:
            torch.set_flush_denormal(flush_before)
            _flush_denormal = flush_before


__all__ = ["torch_settings"]
