"""The trained supernet as an accuracy estimate: each architecture's top-1 with the shared weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_spaces import Arch, Space, SpaceError
from search_spaces.errors import first_line

from ..errors import BadInput
from ..train.checkpoint import load_checkpoint
from ..train.evaluation import evaluate_subnet
from .base import Estimator


class SupernetEstimator(Estimator):
    """Top-1 (%) of each architecture with a trained supernet's weights on the validation split of its
    data (``nas.train.evaluate_subnet``: the subnet extracted, its BatchNorm statistics recalibrated on a
    few training batches). The search space's architectures are scored as the same genes in the
    checkpoint's space (its classes, and its resolution where the search's is not trained), so a search
    can rank with a supernet trained on small images while its latency is that of the device's input.
    Results are cached by architecture id; the checkpoint and data are loaded on first use (and not
    pickled), so Ray workers each load them once.
    """

    name = "supernet"
    unit = "top-1 %"

    def __init__(
        self,
        checkpoint: str | Path,
        space: Space,
        *,
        data: str | None = None,
        seed: int = 0,
        calib_batches: int | None = None,
        limit: int | None = None,
        batch_size: int = 256,
    ):
        self.path, self.space, self.data_source, self.seed = str(checkpoint), space, data, seed
        self.limit, self.batch_size = limit, batch_size
        ckpt = load_checkpoint(self.path)  # fails fast, one line, on a bad file
        if ckpt.kind != "supernet":
            raise BadInput(f"{self.path} holds one trained architecture, not a supernet (nas train without --arch)")
        for arch in (space.smallest(), space.largest()):
            try:
                ckpt.adapt(arch)
            except SpaceError as exc:
                raise BadInput(
                    f"{self.path}: the supernet's space {ckpt.space.name!r} cannot run architectures of "
                    f"{space.name!r} ({first_line(exc)})"
                ) from None
        self.calib_batches = calib_batches if calib_batches is not None else ckpt.settings.calib_batches
        self._cache: dict[str, float] = {}
        self._loaded: tuple[Any, Any, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}

    def _load(self) -> tuple[Any, Any, Any]:
        if self._loaded is None:
            ckpt = load_checkpoint(self.path)
            self._loaded = (ckpt, ckpt.model(), ckpt.data(self.data_source))
        return self._loaded

    def estimate(self, archs: Sequence[Arch]) -> list[float]:
        out = []
        for arch in archs:
            if arch.id not in self._cache:
                ckpt, net, data = self._load()
                self._cache[arch.id] = float(
                    evaluate_subnet(
                        net,
                        ckpt.adapt(arch),
                        data,
                        batch_size=self.batch_size,
                        calib_batches=self.calib_batches,
                        limit=self.limit,
                        seed=self.seed,
                    )
                )
            out.append(self._cache[arch.id])
        return out


__all__ = ["SupernetEstimator"]
