"""EfficientFormerV2 layers (stem, downsampling, unified FFN, head) and the registry of layer classes.

Every layer class is built from a :class:`~search_spaces.LayerSpec` (``from_spec``) and counts its
parameters and MACs from the spec alone (``count``), beside the code that defines it. MACs are those
of convolutions, matmuls and linear layers (what ``torch.utils.flop_counter`` counts, halved).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import LayerSpec

from .blocks import RelativePositionBias, conv_bn, conv_bn_params, layer_scale, residual
from .mixers import MHSA, Additive, Separable, SepViT


class Stem(nn.Module):
    """Two Conv3x3 stride 2 + BN + GELU: 3 -> c/2 -> c, a quarter of the input resolution."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = conv_bn(3, dim // 2, 3, 2)
        self.conv2 = conv_bn(dim // 2, dim, 3, 2)

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> Stem:
        return cls(spec.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.conv2(F.gelu(self.conv1(x))))

    @staticmethod
    def count(spec: LayerSpec) -> tuple[int, int]:
        c, half, g = spec.cout, spec.cout // 2, spec.grid
        params = conv_bn_params(3, half, 3) + conv_bn_params(half, c, 3)
        return params, (g // 2) ** 2 * half * 27 + (g // 4) ** 2 * c * half * 9


class ConvDown(nn.Module):
    """Conv3x3 stride 2 + BN between stages."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn(cin, cout, 3, 2)

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> ConvDown:
        return cls(spec.cin, spec.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    @staticmethod
    def count(spec: LayerSpec) -> tuple[int, int]:
        return conv_bn_params(spec.cin, spec.cout, 3), (spec.grid // 2) ** 2 * spec.cout * spec.cin * 9


class AttnDown(nn.Module):
    """Dual-path attention downsampling: Conv3x3 s2 + BN plus an attention branch.

    Queries come from the map halved twice over (a strided depthwise 3x3 conv added to a stride-2
    pooling, then a 1x1 conv + BN) and attend to every position of the input map, with a learned
    bias per (|2a - b|) offset; local V is a strided depthwise conv of V; no talking heads.
    """

    heads, key_dim, attn_ratio = 8, 16, 4

    def __init__(self, cin: int, cout: int, grid: int):
        super().__init__()
        inner_k, inner_v = self.heads * self.key_dim, self.heads * self.key_dim * self.attn_ratio
        self.conv = conv_bn(cin, cout, 3, 2)
        self.q_local = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin)
        self.q_proj = conv_bn(cin, inner_k)
        self.k = conv_bn(cin, inner_k)
        self.v = conv_bn(cin, inner_v)
        self.v_local = conv_bn(inner_v, inner_v, 3, 2, groups=inner_v)
        self.proj = conv_bn(inner_v, cout)
        self.bias = RelativePositionBias(self.heads, grid)

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> AttnDown:
        return cls(spec.cin, spec.cout, spec.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        q = self.q_proj(self.q_local(x) + F.avg_pool2d(x, 1, 2))
        h, w = q.shape[-2:]
        q = q.reshape(B, self.heads, self.key_dim, h * w).transpose(-2, -1)
        k = self.k(x).reshape(B, self.heads, self.key_dim, H * W)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(B, self.heads, -1, H * W).transpose(-2, -1)
        attn = ((q @ k) * self.key_dim**-0.5 + self.bias((h, w), (H, W), step=2)).softmax(dim=-1)
        out = (attn @ v).transpose(-2, -1).reshape(B, -1, h, w) + v_local
        return self.proj(F.gelu(out)) + self.conv(x)

    @classmethod
    def count(cls, spec: LayerSpec) -> tuple[int, int]:
        ci, co, g = spec.cin, spec.cout, spec.grid
        ik, iv = cls.heads * cls.key_dim, cls.heads * cls.key_dim * cls.attn_ratio
        n_out, n_in = (g // 2) ** 2, g * g
        params = (
            conv_bn_params(ci, co, 3)
            + 10 * ci
            + conv_bn_params(ci, ik) * 2
            + conv_bn_params(ci, iv)
            + conv_bn_params(iv, iv, 3, iv)
            + conv_bn_params(iv, co)
            + cls.heads * g * g
        )
        macs = (
            n_out * co * ci * 9
            + n_out * ci * 9
            + n_out * ci * ik
            + n_in * ci * (ik + iv)
            + n_out * iv * 9
            + n_out * n_in * (ik + iv)
            + n_out * iv * co
        )
        return params, macs


class FFN(nn.Module):
    """Unified FFN: Conv1x1 + BN + GELU, DWConv3x3 + BN + GELU, Conv1x1 + BN; layer scale; residual."""

    drop_path: float = 0.0  # stochastic depth rate of the residual branch (see residual())

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = conv_bn(dim, hidden)
        self.mid = conv_bn(hidden, hidden, 3, groups=hidden)
        self.fc2 = conv_bn(hidden, dim)
        self.layer_scale = layer_scale(dim)

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> FFN:
        return cls(spec.cout, spec.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return residual(self, x, self.fc2(F.gelu(self.mid(F.gelu(self.fc1(x))))))

    @staticmethod
    def count(spec: LayerSpec) -> tuple[int, int]:
        c, h, g = spec.cout, spec.hidden, spec.grid
        return 2 * c * h + 15 * h + 4 * c, g * g * (2 * c * h + 9 * h)


class Head(nn.Module):
    """BN + global average pool + classifier, plus a distillation classifier whose logits are
    averaged with the classifier's at eval (training returns both, for distillation)."""

    def __init__(self, dim: int, num_classes: int, distillation: bool = True):
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.head = nn.Linear(dim, num_classes)
        self.dist_head = nn.Linear(dim, num_classes) if distillation else None

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> Head:
        return cls(spec.cin, spec.cout, spec.distillation)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.norm(x).mean(dim=(2, 3))
        if self.dist_head is None:
            return self.head(x)
        logits, dist = self.head(x), self.dist_head(x)
        return (logits, dist) if self.training else (logits + dist) / 2

    @staticmethod
    def count(spec: LayerSpec) -> tuple[int, int]:
        c, n, heads = spec.cin, spec.cout, 2 if spec.distillation else 1
        return 2 * c + heads * (c * n + n), heads * c * n


#: Layer kind -> class. Every kind that search_spaces.LayerSpec can name has exactly one class.
LAYER_CLASSES: dict[str, type[nn.Module]] = {
    "stem": Stem,
    "conv_down": ConvDown,
    "attn_down": AttnDown,
    "ffn": FFN,
    "mhsa": MHSA,
    "separable": Separable,
    "additive": Additive,
    "sepvit": SepViT,
    "head": Head,
}


def build_layer(spec: LayerSpec) -> nn.Module:
    """The standalone module for one layer spec."""
    return LAYER_CLASSES[spec.kind].from_spec(spec)


__all__ = [
    "LAYER_CLASSES",
    "build_layer",
    "Stem",
    "ConvDown",
    "AttnDown",
    "FFN",
    "Head",
    "MHSA",
    "Separable",
    "Additive",
    "SepViT",
    "RelativePositionBias",
]
