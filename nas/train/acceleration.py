"""How a training run feeds its accelerator, beside precision (``nas.train.precision``): the memory format
of weights and batches, pinned host memory for asynchronous copies, and compiled evaluation.

**Memory format.** ``channels-last`` keeps 4-D tensors as NHWC, the layout in which GPU convolution
kernels run without transposes (and tensor cores under bf16/fp16); it is the default on CUDA.
On CPU the default stays ``contiguous``, so a run's numbers, and the bit-exact resume of its
checkpoints, are those of earlier versions; ``--memory-format channels-last`` is there to try.
Either format computes the same function (to rounding): the weights are stored in it, the supernet's
weight slices keep its strides, and every batch is converted on its way to the device.

**Pinned memory.** On a machine with CUDA, batches are put in page-locked host memory so the copy to the
GPU is asynchronous (``non_blocking``) and overlaps the previous step; without CUDA nothing is pinned.

**Compiled evaluation.** ``--compile-eval`` runs each validated subnet through ``torch.compile`` after
its BatchNorm re-estimation (the eager module re-estimates, so the compiled graph is only the eval-mode
forward). A subnet is extracted as a plain module of fixed shapes, which is what compilation rewards;
the compile itself takes seconds to minutes per subnet, so it pays only when validation sets are large.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import BadInput

#: The memory formats ``--memory-format`` accepts.
MEMORY_FORMATS = ("channels-last", "contiguous")


def memory_format(name: str | None, device: torch.device | str) -> torch.memory_format:
    """The torch memory format `name` names; None: channels-last on CUDA, contiguous elsewhere."""
    if name is None:
        name = "channels-last" if torch.device(device).type == "cuda" else "contiguous"
    if name not in MEMORY_FORMATS:
        raise BadInput(f"--memory-format {name}: expected one of {', '.join(MEMORY_FORMATS)}")
    return torch.channels_last if name == "channels-last" else torch.contiguous_format


def to_device(x: torch.Tensor, device: torch.device | str, fmt: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """`x` on `device` (asynchronously from pinned memory), a batch of images in the memory format `fmt`."""
    if x.dim() == 4:
        return x.to(device, memory_format=fmt, non_blocking=True)
    return x.to(device, non_blocking=True)


def pinned(x: torch.Tensor) -> torch.Tensor:
    """`x` in page-locked memory when a CUDA device can use it (the copy is then asynchronous); else `x`."""
    return x.pin_memory() if torch.cuda.is_available() else x


def compiled(model: nn.Module) -> nn.Module:
    """`model` compiled for inference (``torch.compile``, static shapes)."""
    return torch.compile(model, dynamic=False)


__all__ = ["MEMORY_FORMATS", "memory_format", "to_device", "pinned", "compiled"]
