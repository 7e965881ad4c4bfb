"""Mixed precision for training and evaluation: ``fp32`` (plain), ``bf16`` or ``fp16`` autocast.

bf16 keeps fp32's exponent range, so it needs no loss scaling and runs on CPUs with bf16 units as well as
on GPUs; fp16 needs a gradient scaler (small gradients underflow otherwise) and is meant for GPUs.
Weights, optimizer state and BatchNorm statistics stay fp32 in every mode: autocast only runs the
matrix products and convolutions in the lower precision.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context of `precision` on `device` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device | str) -> Any:
    """A gradient scaler for fp16 (None otherwise)."""
    return torch.amp.GradScaler(torch.device(device).type) if precision == "fp16" else None


__all__ = ["PRECISIONS", "autocast", "grad_scaler"]
