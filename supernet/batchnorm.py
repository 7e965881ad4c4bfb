"""BatchNorm statistics of a subnet, re-estimated on a few batches.

A subnet's statistics are not stored in a supernet, whose shared buffers mix those of all subnets,
so they are estimated for each extracted subnet before it is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .elastic import SuperNet

#: The normalisations with running statistics (the public classes; their common base is private).
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _inputs(batch: torch.Tensor | tuple | list) -> torch.Tensor:
    return batch[0] if isinstance(batch, tuple | list) else batch


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor | tuple]) -> nn.Module:
    """Reset every BatchNorm's running statistics and re-estimate them (a plain average over `batches`,
    inputs or (inputs, labels)); returns `model`, in the train/eval mode it had.

    `model` must be a plain module: ``net.extract(arch)``, not the supernet (that would overwrite the
    shared statistics).
    """
    if isinstance(model, SuperNet):
        raise TypeError("recalibrate_bn needs a plain module: pass net.extract(arch), not the supernet")
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    was_training = model.training
    model.train()
    device = next(model.parameters()).device
    try:
        for batch in batches:
            model(_inputs(batch).to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return model


__all__ = ["recalibrate_bn"]
