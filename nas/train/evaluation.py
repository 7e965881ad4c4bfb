"""Top-1 accuracy of a model or of a supernet's subnet on a validation split.

:func:`evaluate_subnet` is what ``nas train`` validates with and what the ``supernet`` accuracy
estimator of the search calls: the subnet extracted, its BatchNorm statistics re-estimated on a fixed
draw of training batches, then evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

import supernet
from search_spaces import Arch

from ..errors import BadInput
from .acceleration import compiled, to_device
from .data import Data, Loader, seed_of
from .precision import autocast


def logits_of(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """One prediction from a model's output: the average of the heads when there are two."""
    return torch.stack(out).mean(0) if isinstance(out, tuple) else out


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """A batch at another input resolution (bilinear; antialiased when shrinking)."""
    if x.shape[-1] == resolution:
        return x
    return F.interpolate(
        x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=x.shape[-1] > resolution
    )


@torch.no_grad()
def correct_predictions(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    precision: str = "fp32",
    memory_format: torch.memory_format = torch.contiguous_format,
    compile: bool = False,
) -> torch.Tensor:
    """Whether `model` (eval mode; two heads averaged) classifies each image of the (inputs, labels)
    batches right, in the loader's order (bool), under `precision`'s autocast (as it trains), the inputs
    in `memory_format`, the model compiled first when `compile` (nas.train.acceleration: pays on large
    validation sets only). Per image, so two models can be compared on the images they disagree on."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    run = compiled(model) if compile else model
    right = []
    try:
        for x, y in loader:
            with autocast(precision, device):
                out = run(to_device(x, device, memory_format))
            right.append(logits_of(out).float().argmax(dim=1).cpu() == y)
    finally:
        model.train(was_training)
    right = torch.cat(right) if right else torch.zeros(0, dtype=torch.bool)
    if not len(right):
        raise BadInput("evaluation: the validation split is empty")
    return right


def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    precision: str = "fp32",
    memory_format: torch.memory_format = torch.contiguous_format,
    compile: bool = False,
) -> float:
    """Top-1 accuracy in percent of `model` over (inputs, labels) batches (see correct_predictions)."""
    right = correct_predictions(model, loader, precision=precision, memory_format=memory_format, compile=compile)
    return 100.0 * int(right.sum()) / len(right)


def evaluate_subnet(
    net: supernet.SuperNet,
    arch: Arch,
    data: Data,
    *,
    batch_size: int = 256,
    calib_batches: int = 8,
    limit: int | None = None,
    seed: int = 0,
    precision: str = "fp32",
    memory_format: torch.memory_format = torch.contiguous_format,
    compile: bool = False,
) -> float:
    """Top-1 (%) on the validation split of `arch` with the supernet's weights: the subnet is extracted,
    its BatchNorm statistics re-estimated on `calib_batches` training batches (un-augmented, a fixed
    seeded draw), then it is evaluated on the first `limit` validation images (all by default), under
    `precision`, in `memory_format`, compiled first when `compile`."""
    model = net.extract(arch).to(memory_format=memory_format)
    device = next(model.parameters()).device
    calibration = calibration_batches(data, arch.resolution, batch_size, calib_batches, seed)
    with autocast(precision, device):  # the statistics of the activations it runs on
        supernet.recalibrate_bn(model, ((to_device(x, device, memory_format), y) for x, y in calibration))
    val = Loader(data, "val", resolution=arch.resolution, batch_size=batch_size, train=False, limit=limit)
    return evaluate(model, val, precision=precision, memory_format=memory_format, compile=compile)


def calibration_batches(data: Data, resolution: int, batch_size: int = 256, batches: int = 8, seed: int = 0) -> Loader:
    """`batches` un-augmented batches of training images in a fixed seeded order, for recalibrate_bn
    (smaller batches when the training split holds fewer than `batch_size` images)."""
    batch_size = min(batch_size, len(data.train))
    return Loader(
        data,
        "train",
        resolution=resolution,
        batch_size=batch_size,
        train=True,
        augment=False,
        seed=seed_of(seed, 3),
        limit=batch_size * batches,
    )


__all__ = ["correct_predictions", "evaluate", "evaluate_subnet", "calibration_batches", "logits_of", "resize"]
