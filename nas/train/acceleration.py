"""How a training run feeds its accelerator, beside precision (``nas.train.precision``): the memory format
of weights and batches, pinned host memory for asynchronous copies, and compiled evaluation.

**Memory format.** ``channels-last`` keeps 4-D tensors as NHWC, the layout in which GPU convolution
kernels run without transposes (and tensor cores under bf16/fp16), and in which the CPU's oneDNN
kernels run the depthwise and pointwise convolutions of these networks fastest: measured with
``bench/bench_train.py`` (AMD EPYC, 2 threads, rounds interleaved), a training step ran 1.8-1.9x as fast
as with ``contiguous`` tensors on the tiny space at 32 px, and 1.44x (sandwich step) and 1.55x (the
largest subnet alone) on the default space at 64 px. So it is the default everywhere, and a new run's
settings record it by name. ``contiguous`` is what runs before that change used: their checkpoints
recorded no layout, resume in the default one, and continue bit-exact only with ``--memory-format
contiguous``.
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
#: What a run uses unless told otherwise (a new run's settings record it by name).
DEFAULT_MEMORY_FORMAT = "channels-last"


def memory_format(name: str | None) -> torch.memory_format:
    """The torch memory format `name` names (None: channels-last, the fastest on CPU and CUDA alike)."""
    if name is None:  # a checkpoint written before runs recorded their layout
        name = DEFAULT_MEMORY_FORMAT
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


__all__ = ["MEMORY_FORMATS", "DEFAULT_MEMORY_FORMAT", "memory_format", "to_device", "pinned", "compiled"]
