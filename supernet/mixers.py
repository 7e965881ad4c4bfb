"""Token mixers: EfficientFormerV2 MHSA, MobileViTv2 separable and SwiftFormer additive attention.

Each mixer is a residual layer (``x + layer_scale * mixer(x)``, see :func:`supernet.blocks.residual`) on
(B, C, H, W) maps, built from a :class:`~search_spaces.LayerSpec` and able to count its own parameters
and MACs from the spec alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import LayerSpec

from .blocks import RelativePositionBias, conv_bn, conv_bn_params, layer_scale, residual


class MHSA(nn.Module):
    """EfficientFormerV2 attention ("Attention4D") as a residual layer.

    q, k = BN(Conv1x1(x)) with ``heads x key_dim`` channels, v = BN(Conv1x1(x)) with
    ``heads x attn_ratio x key_dim`` channels, local V = BN(DWConv3x3(v));
    logits = q k^T / sqrt(key_dim) + position bias; talking heads (a 1x1 conv across heads) before and
    after the softmax; out = BN(Conv1x1(GELU(attn v + local V))). With stride 2 ("stride attention")
    a strided depthwise conv + BN shrinks the map first and the output is upsampled bilinearly back.
    The inner dimensions do not depend on the layer's width.
    """

    drop_path: float = 0.0  # stochastic depth rate of the residual branch (see residual())

    heads, key_dim, attn_ratio = 8, 32, 4

    def __init__(self, dim: int, grid: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        inner_k, inner_v = self.heads * self.key_dim, self.heads * self.key_dim * self.attn_ratio
        if stride > 1:
            self.stride_conv = conv_bn(dim, dim, 3, stride, groups=dim)
        self.q = conv_bn(dim, inner_k)
        self.k = conv_bn(dim, inner_k)
        self.v = conv_bn(dim, inner_v)
        self.v_local = conv_bn(inner_v, inner_v, 3, groups=inner_v)
        self.talking_head1 = nn.Conv2d(self.heads, self.heads, 1)
        self.talking_head2 = nn.Conv2d(self.heads, self.heads, 1)
        self.proj = conv_bn(inner_v, dim)
        self.bias = RelativePositionBias(self.heads, -(-grid // stride))  # the strided conv gives ceil(grid / 2)
        self.layer_scale = layer_scale(dim)

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> MHSA:
        return cls(spec.cout, spec.grid, spec.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        y = self.stride_conv(x) if self.stride > 1 else x
        h, w = y.shape[-2:]
        n = h * w
        q = self.q(y).reshape(B, self.heads, self.key_dim, n).transpose(-2, -1)
        k = self.k(y).reshape(B, self.heads, self.key_dim, n)
        v = self.v(y)
        v_local = self.v_local(v)
        v = v.reshape(B, self.heads, -1, n).transpose(-2, -1)
        attn = (q @ k) * self.key_dim**-0.5 + self.bias((h, w), (h, w))
        attn = self.talking_head2(self.talking_head1(attn).softmax(dim=-1))
        out = (attn @ v).transpose(-2, -1).reshape(B, -1, h, w) + v_local
        if self.stride > 1:
            out = F.interpolate(out, size=(H, W), mode="bilinear", align_corners=False)
        return residual(self, x, self.proj(F.gelu(out)))

    @classmethod
    def count(cls, spec: LayerSpec) -> tuple[int, int]:
        c, g, s = spec.cout, spec.grid, spec.stride
        ik, iv, h = cls.heads * cls.key_dim, cls.heads * cls.key_dim * cls.attn_ratio, cls.heads
        ga = -(-g // s)
        n, n_in = ga * ga, g * g
        params = (
            (conv_bn_params(c, c, 3, c) if s > 1 else 0)
            + 2 * conv_bn_params(c, ik)
            + conv_bn_params(c, iv)
            + conv_bn_params(iv, iv, 3, iv)
            + 2 * (h * h + h)
            + conv_bn_params(iv, c)
            + h * ga * ga
            + c
        )
        macs = (
            (n * c * 9 if s > 1 else 0)
            + n * c * (2 * ik + iv)
            + n * iv * 9
            + 2 * n * n * h * h
            + n * n * (ik + iv)
            + n_in * iv * c
        )
        return params, macs


class Separable(nn.Module):
    """MobileViTv2 separable self-attention (linear in tokens) with its GroupNorm pre-norm.

    On the patch layout (B, C, P, N) with 2x2 patches (P=4; one patch position when a side is odd):
    context scores cs = softmax_N(Conv1x1_{C->1}(x)), context vector cv = sum_N(K(x) * cs),
    y = Conv1x1_out(ReLU(V(x)) * cv). q, k and v are separate 1x1 convs (one C->1+2C conv in the paper;
    same parameters and MACs) so that narrower layers are leading slices of wider ones.
    """

    drop_path: float = 0.0  # stochastic depth rate of the residual branch (see residual())

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.q = nn.Conv2d(dim, 1, 1)
        self.k = nn.Conv2d(dim, dim, 1)
        self.v = nn.Conv2d(dim, dim, 1)
        self.out = nn.Conv2d(dim, dim, 1)
        self.layer_scale = layer_scale(dim)

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> Separable:
        return cls(spec.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        p = 2 if H % 2 == 0 and W % 2 == 0 else 1
        P, N = p * p, (H // p) * (W // p)
        y = self.norm(x)
        scores = F.pixel_unshuffle(self.q(y), p).reshape(B, 1, P, N).softmax(dim=-1)
        keys = F.pixel_unshuffle(self.k(y), p).reshape(B, C, P, N)
        context = (keys * scores).sum(dim=-1, keepdim=True)
        values = F.pixel_unshuffle(F.relu(self.v(y)), p).reshape(B, C, P, N)
        mixed = F.pixel_shuffle((values * context).reshape(B, C * P, H // p, W // p), p)
        return residual(self, x, self.out(mixed))

    @staticmethod
    def count(spec: LayerSpec) -> tuple[int, int]:
        c, g = spec.cout, spec.grid
        return 3 * c * c + 7 * c + 1, g * g * (3 * c * c + c)


class Additive(nn.Module):
    """SwiftFormer efficient additive attention (single head, linear in tokens).

    On tokens (B, N, C): Q = l2norm(Linear(x)), K = l2norm(Linear(x)); A = l2norm_N(Q w_g / sqrt(C));
    global query g = sum_N(A * Q); out = Linear(Linear(g * K) + Q). No softmax and no QK^T.
    """

    drop_path: float = 0.0  # stochastic depth rate of the residual branch (see residual())

    def __init__(self, dim: int):
        super().__init__()
        self.to_query = nn.Linear(dim, dim)
        self.to_key = nn.Linear(dim, dim)
        self.w_g = nn.Parameter(torch.randn(dim, 1))
        self.proj = nn.Linear(dim, dim)
        self.final = nn.Linear(dim, dim)
        self.layer_scale = layer_scale(dim)

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> Additive:
        return cls(spec.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        query = F.normalize(self.to_query(tokens), dim=-1)
        key = F.normalize(self.to_key(tokens), dim=-1)
        weights = F.normalize((query @ self.w_g) * C**-0.5, dim=1)
        global_query = (weights * query).sum(dim=1, keepdim=True)
        out = self.final(self.proj(global_query * key) + query)
        return residual(self, x, out.transpose(1, 2).reshape(B, C, H, W))

    @staticmethod
    def count(spec: LayerSpec) -> tuple[int, int]:
        c, g = spec.cout, spec.grid
        return 4 * c * c + 6 * c, g * g * (4 * c * c + c)


__all__ = ["MHSA", "Separable", "Additive"]
