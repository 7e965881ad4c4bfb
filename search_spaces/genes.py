"""Genes: the integer-coded choices a search varies, typed rather than spelled as strings.

A space's genes are its resolution, then per stage its depth and width and, for every block up to
the stage's largest depth, the block's FFN ratio and mixer. Each gene knows its field, stage and block,
so code that needs them (encodings, surrogates, operators) never parses names such as ``s3.b4.ratio``.
A problem of the user's own (``nas.search``) has genes with only a name and choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Gene:
    """One coded choice: `field` (``resolution``, ``depth``, ``width``, ``ratio``, ``mixer``, or any name
    for a problem's own gene), its `choices`, and for space genes the 1-based `stage` and the 0-based
    `block` it belongs to (None for stage-level and global genes)."""

    field: str
    choices: tuple[Any, ...]
    stage: int | None = None
    block: int | None = None

    @property
    def name(self) -> str:
        """``resolution``, ``s2.width``, ``s3.b4.ratio``: the name runs and samplers store it under."""
        if self.stage is None:
            return self.field
        if self.block is None:
            return f"s{self.stage}.{self.field}"
        return f"s{self.stage}.b{self.block}.{self.field}"

    def __len__(self) -> int:
        return len(self.choices)

    def active(self, depths: Sequence[int]) -> bool:
        """Whether the gene is used by an architecture of these per-stage depths (a block gene past
        its stage's depth is not)."""
        return self.block is None or self.block < depths[self.stage - 1]


__all__ = ["Gene"]
