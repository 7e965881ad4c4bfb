"""The block-configuration key: one description of every distinct piece of a network.

An architecture is turned into a sequence of :class:`LayerSpec` by :meth:`Arch.layers`. That one
sequence is what the standalone model is built from, what the supernet slices its weights for, what
the parameter/MAC counters sum over, and what a latency table stores one entry per :attr:`LayerSpec.key`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Layer kinds and what they are. Mixer kinds are also the names used in architecture files.
LAYER_KINDS = {
    "stem": "two Conv3x3 stride 2 + BN + GELU (3 -> c/2 -> c)",
    "conv_down": "Conv3x3 stride 2 + BN between stages",
    "attn_down": "dual-path attention downsampling (conv + attention with strided local queries)",
    "ffn": "unified FFN: 1x1 conv, depthwise 3x3, 1x1 conv, each with BN; layer scale; residual",
    "mhsa": "EfficientFormerV2 MHSA (talking heads, local V, optional stride attention); residual",
    "separable": "MobileViTv2 separable self-attention with GroupNorm pre-norm; residual",
    "additive": "SwiftFormer efficient additive attention; residual",
    "sepvit": "SepViT depthwise separable self-attention (window tokens, attention within then among windows); residual",
    "head": "BN + global average pool + classifier (+ distillation classifier)",
}
MIXER_KINDS = ("none", "mhsa", "separable", "additive", "sepvit")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a concrete network.

    ``name`` says where it sits (the supernet slot it takes its weights from); every other field
    describes what it computes, and those fields alone make its :attr:`key`.
    """

    kind: str
    cin: int
    cout: int
    grid: int  # input feature-map side in pixels (maps are square)
    ratio: float = 0  # FFN expansion ratio (ffn only)
    stride: int = 1  # 2 for stride attention (mhsa) and downsampling
    distillation: bool = False  # head only: a second (distillation) classifier
    heads: int = 0  # sepvit only: attention heads (32 channels each)
    window: int = 0  # sepvit only: window side in pixels (at most the grid; the map is padded to a multiple)
    name: str = field(default="", compare=False)
    stage: int = field(default=0, compare=False)  # 0 for the stem, 1..4 for stages, 5 for the head

    @property
    def hidden(self) -> int:
        """FFN hidden channels: int(width * ratio), as the reference implementation rounds."""
        return int(self.cout * self.ratio)

    @property
    def key(self) -> str:
        """A stable text key naming what this layer computes (not where it sits)."""
        parts = [self.kind, f"c{self.cin}" if self.cin == self.cout else f"c{self.cin}-{self.cout}", f"g{self.grid}"]
        if self.kind == "ffn":
            parts.append(f"e{_num(self.ratio)}")
        if self.stride != 1:
            parts.append(f"s{self.stride}")
        if self.kind == "sepvit":
            parts += [f"h{self.heads}", f"w{self.window}"]
        if self.distillation:
            parts.append("dist")
        return ":".join(parts)

    @property
    def grid_out(self) -> int:
        """Output feature-map side (resolutions are multiples of 32, so halving is exact)."""
        return {"stem": self.grid // 4, "conv_down": self.grid // 2, "attn_down": self.grid // 2}.get(self.kind, self.grid)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
