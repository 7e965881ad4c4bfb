"""Token mixers: EfficientFormerV2 MHSA, MobileViTv2 separable, SwiftFormer additive and SepViT attention.

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

    On the patch layout (B, C, P, N) with 2x2 patches (P=4): context scores
    cs = softmax_N(Conv1x1_{C->1}(x)), context vector cv = sum_N(K(x) * cs),
    y = Conv1x1_out(ReLU(V(x)) * cv). q, k and v are separate 1x1 convs (one C->1+2C conv in the paper;
    same parameters and MACs) so that narrower layers are leading slices of wider ones.

    A map with an odd side (7x7 in stage 4 at 224 px) is handled as MobileViTv2 does: the normalised map
    is resized bilinearly (corners aligned) up to the next even side, attended in 2x2 patches, and the
    result resized back to the map's size before the output conv (a 1x1 conv commutes with bilinear
    resizing, whose weights sum to one, so this equals converting first and costs fewer MACs).
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
        y = self.norm(x)
        He, We = H + H % 2, W + W % 2
        if (He, We) != (H, W):
            y = F.interpolate(y, size=(He, We), mode="bilinear", align_corners=True)
        N = (He // 2) * (We // 2)
        scores = F.pixel_unshuffle(self.q(y), 2).reshape(B, 1, 4, N).softmax(dim=-1)
        keys = F.pixel_unshuffle(self.k(y), 2).reshape(B, C, 4, N)
        context = (keys * scores).sum(dim=-1, keepdim=True)
        values = F.pixel_unshuffle(F.relu(self.v(y)), 2).reshape(B, C, 4, N)
        mixed = F.pixel_shuffle((values * context).reshape(B, C * 4, He // 2, We // 2), 2)
        if (He, We) != (H, W):
            mixed = F.interpolate(mixed, size=(H, W), mode="bilinear", align_corners=True)
        return residual(self, x, self.out(mixed))

    @staticmethod
    def count(spec: LayerSpec) -> tuple[int, int]:
        c, g = spec.cout, spec.grid
        even = g + g % 2
        return 3 * c * c + 7 * c + 1, even * even * (2 * c * c + c) + g * g * c * c


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


class SepViT(nn.Module):
    """SepViT depthwise separable self-attention with its LayerNorm pre-norm, as a residual layer.

    The normalised map is cut into ``window`` x ``window`` windows (zero-padded at the bottom and right to
    a multiple of the window; padded pixels are masked out as keys, their outputs zeroed before PSA and
    cropped at the end, so padding changes no real pixel's result).
    Depthwise self-attention (DSA): within each window, its pixels and a learnable window token (one
    vector shared by all windows, as the window count changes with the resolution) attend to each other,
    ``heads`` heads of 32 channels, q/k/v linear. Pointwise self-attention (PSA): the window tokens' DSA
    outputs, LayerNorm-ed and passed through GELU, give the queries and keys (linear) of attention among
    windows, per head, whose values are the windows' whole DSA outputs: pixel p of window i becomes
    sum_j a_ij z_j[p]. A linear projection returns to the width. With one window PSA is the identity
    (softmax over one window) and is skipped: the layer is then plain multi-head attention with one
    extra learned token. The paper's grouped self-attention (windows merged into groups in later blocks)
    is not included: it is a second block type, and our blocks pair one mixer with one FFN.

    The inner width (heads x 32) does not depend on the layer's width, and only the input side of
    q/k/v and the output side of the projection do, so narrower layers are leading slices.
    """

    drop_path: float = 0.0  # stochastic depth rate of the residual branch (see residual())

    dim_head = 32
    #: logit added for padded keys: exp() of it is 0 in float32 and float16 alike, and it stays finite in fp16
    MASKED = -1e4

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        inner = heads * self.dim_head
        self.norm = nn.LayerNorm(dim)
        self.window_token = nn.Parameter(torch.randn(dim) * 0.02)
        self.q = nn.Linear(dim, inner)
        self.k = nn.Linear(dim, inner)
        self.v = nn.Linear(dim, inner)
        self.token_norm = nn.LayerNorm(inner)
        self.token_q = nn.Linear(inner, inner)
        self.token_k = nn.Linear(inner, inner)
        self.proj = nn.Linear(inner, dim)
        self.layer_scale = layer_scale(dim)
        self._masks: dict[tuple, torch.Tensor] = {}

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> SepViT:
        return cls(spec.cout, spec.heads, spec.window)

    def _padding(self, H: int, W: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For a padded map: the additive key mask (windows, 1, 1 + window^2), 0 for the window token and
        real pixels and MASKED for padding, and the (windows, window^2, 1) 0/1 multiplier that zeroes the
        padded pixels' DSA outputs before PSA (so padding reaches no real pixel). Cached per shape."""
        key = (H, W, like.device, like.dtype)
        cached = self._masks.get(key)
        if cached is None:
            s = self.window
            rows, cols = (H + s - 1) // s, (W + s - 1) // s
            real = F.pad(torch.ones(H, W, device=like.device, dtype=like.dtype), (0, cols * s - W, 0, rows * s - H))
            real = real.reshape(rows, s, cols, s).transpose(1, 2).reshape(rows * cols, s * s)
            with_token = torch.cat([torch.ones(rows * cols, 1, device=like.device, dtype=like.dtype), real], dim=1)
            cached = self._masks[key] = ((1 - with_token[:, None, :]) * self.MASKED, real[:, :, None])
        return cached

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        s, h, d = self.window, self.heads, self.dim_head
        rows, cols = (H + s - 1) // s, (W + s - 1) // s  # not -(-H // s): traced, ONNX would truncate
        n, t = rows * cols, s * s  # windows, pixels per window
        y = self.norm(x.permute(0, 2, 3, 1))
        padded = (rows * s, cols * s) != (H, W)
        if padded:
            y = F.pad(y, (0, 0, 0, cols * s - W, 0, rows * s - H))
        y = y.reshape(B, rows, s, cols, s, C).transpose(2, 3).reshape(B, n, t, C)
        tokens = torch.cat([self.window_token.expand(B, n, 1, C), y], dim=2)

        def split(z: torch.Tensor) -> torch.Tensor:  # (B, n, 1 + t, h d) -> (B, h, n, 1 + t, d)
            return z.reshape(B, n, t + 1, h, d).permute(0, 3, 1, 2, 4)

        q, k, v = split(self.q(tokens)), split(self.k(tokens)), split(self.v(tokens))
        attn = (q @ k.transpose(-2, -1)) * d**-0.5
        if padded:
            key_mask, keep = self._padding(H, W, attn)
            attn = attn + key_mask
        out = attn.softmax(dim=-1) @ v
        window_tokens, z = out[:, :, :, 0], out[:, :, :, 1:]  # (B, h, n, d), (B, h, n, t, d)
        if padded:
            z = z * keep
        if n > 1:
            wt = F.gelu(self.token_norm(window_tokens.transpose(1, 2).reshape(B, n, h * d)))
            wq = self.token_q(wt).reshape(B, n, h, d).transpose(1, 2)
            wk = self.token_k(wt).reshape(B, n, h, d).transpose(1, 2)
            among = ((wq @ wk.transpose(-2, -1)) * d**-0.5).softmax(dim=-1)  # (B, h, n, n)
            z = (among @ z.reshape(B, h, n, t * d)).reshape(B, h, n, t, d)
        z = z.permute(0, 2, 3, 1, 4).reshape(B, rows, cols, s, s, h * d).transpose(2, 3)
        z = z.reshape(B, rows * s, cols * s, h * d)
        if padded:
            z = z[:, :H, :W]
        return residual(self, x, self.proj(z).permute(0, 3, 1, 2))

    @classmethod
    def count(cls, spec: LayerSpec) -> tuple[int, int]:
        c, g, s, i = spec.cout, spec.grid, spec.window, spec.heads * cls.dim_head
        n, t = (-(-g // s)) ** 2, s * s
        params = 4 * c * i + 2 * i * i + 7 * i + 5 * c
        macs = 3 * n * (t + 1) * c * i + 2 * n * (t + 1) ** 2 * i + g * g * i * c
        if n > 1:
            macs += 2 * n * i * i + n * n * i * (1 + t)
        return params, macs


__all__ = ["MHSA", "Separable", "Additive", "SepViT"]
