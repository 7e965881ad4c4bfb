"""Trained weights for an exported architecture: from a ``nas train`` checkpoint, or from a bare supernet
state_dict, always read with ``weights_only=True`` (a file can never run code when loaded)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import supernet
from search_spaces import Arch, Space, SpaceError
from search_spaces.errors import first_line

from ..errors import BadInput
from ..train.checkpoint import is_checkpoint, load_checkpoint, read_weights


def load_supernet_weights(ckpt: str | Path, space: Space | str, data: Any = None) -> supernet.SuperNet:
    """The supernet of `space` holding a checkpoint's weights: a file with the supernet's state_dict, or
    a dict whose ``"model"`` is one (as a training checkpoint keeps it beside optimizer state). `data`
    is the file's content when already read."""
    data = read_weights(ckpt, "--supernet") if data is None else data
    state = data["model"] if isinstance(data, Mapping) and "model" in data else data
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadInput(f"--supernet {ckpt}: expected a supernet state_dict, or a dict with one under 'model'")
    net = supernet.build(space)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [
        f"{k} is {tuple(state[k].shape)}, the space needs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or resized:
        problems = [
            f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
            resized[0] if resized else "",
        ]
        raise BadInput(
            f"--supernet {ckpt}: not a supernet of space {net.space.name!r}: "
            f"{'; '.join(p for p in problems if p)} (trained on another space? see --space)"
        )
    net.load_state_dict(state)
    return net.eval()


def trained_model(arch: Arch, ckpt: str | Path, space: Space | str | None = None) -> tuple[Arch, Any]:
    """`arch` with trained weights: from a ``nas train`` checkpoint (a supernet's subnet, the same genes in
    the checkpoint's space, i.e. its classes and resolution; or the one architecture it trained), else
    from a bare supernet state_dict of `space` (default: `arch`'s). Returns the architecture the weights
    fit and the standalone module."""
    data = read_weights(ckpt, "--supernet")
    if not is_checkpoint(data):
        return arch, load_supernet_weights(ckpt, space or arch.search_space, data).extract(arch)
    checkpoint = load_checkpoint(ckpt)
    try:
        adapted = checkpoint.adapt(arch)
    except SpaceError as exc:
        raise BadInput(
            f"--supernet {ckpt}: trained on {checkpoint.space.name!r}, which cannot run this architecture ({first_line(exc)})"
        ) from None
    if checkpoint.kind == "supernet":
        return adapted, checkpoint.model().extract(adapted)
    if checkpoint.arch is None or checkpoint.adapt(checkpoint.arch).id != adapted.id:
        raise BadInput(
            f"--supernet {ckpt}: holds one trained architecture ({checkpoint.arch.id if checkpoint.arch else '?'}), not {arch.id}"
        )
    return checkpoint.arch, checkpoint.model()


__all__ = ["load_supernet_weights", "trained_model"]
