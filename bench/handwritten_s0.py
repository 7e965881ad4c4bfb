"""A plain, hand-written EfficientFormerV2-S0: the speed baseline for the benchmarks.

Written independently of ``supernet/`` (nothing is imported from it), straight from the facts in
docs/models.md section 1, the way a reference implementation lays the model out:

- stem: Conv3x3 s2 + BN + GELU, Conv3x3 s2 + BN + GELU (3 -> 16 -> 32), 224 -> 56;
- four stages of widths 32, 48, 96, 176 and depths 2, 2, 6, 4; every block has a unified FFN
  (1x1 conv + BN + GELU, depthwise 3x3 + BN + GELU, 1x1 conv + BN; layer scale; residual);
- the last 2 blocks of stages 3 and 4 hold an Attention4D MHSA before their FFN (talking heads,
  local V, stride attention in stage 3);
- Conv3x3 s2 + BN downsampling into stages 2 and 3, dual-path attention downsampling into stage 4;
- BN + global average pool + classifier and distillation classifier, averaged at eval.

Attention biases are a learned table with one entry per distinct (|dy|, |dx|) offset and a
registered buffer of indices into it; at eval the gathered bias is cached (as the reference does).

Run ``python bench/handwritten_s0.py`` to check its parameter count (3,600,256).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

S0_WIDTHS = (32, 48, 96, 176)
S0_DEPTHS = (2, 2, 6, 4)
S0_VIT_NUM = 2
S0_RATIOS = ((4, 4), (4, 4), (4, 3, 3, 3, 4, 4), (4, 3, 3, 4))
S0_PARAMS = 3_600_256


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups), nn.BatchNorm2d(cout))


def _bias_index(q_res: int, k_res: int, step: int) -> tuple[int, torch.Tensor]:
    """Number of distinct (|dy|, |dx|) offsets between query and key positions, and the index map."""
    q_points = list(itertools.product(range(q_res), range(q_res)))
    k_points = list(itertools.product(range(k_res), range(k_res)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for qy, qx in q_points:
        for ky, kx in k_points:
            off = (abs(qy * step - ky), abs(qx * step - kx))
            if off not in offsets:
                offsets[off] = len(offsets)
            idxs.append(offsets[off])
    return len(offsets), torch.tensor(idxs, dtype=torch.long).view(len(q_points), len(k_points))


class _BiasMixin(nn.Module):
    """Learned relative-position bias; cached gather at eval."""

    def _init_bias(self, heads: int, q_res: int, k_res: int, step: int) -> None:
        n_offsets, idxs = _bias_index(q_res, k_res, step)
        self.attention_biases = nn.Parameter(torch.zeros(heads, n_offsets))
        self.register_buffer("attention_bias_idxs", idxs)
        self._cached_bias: torch.Tensor | None = None

    @torch.no_grad()
    def train(self, mode: bool = True):
        super().train(mode)
        self._cached_bias = None if mode else self.attention_biases[:, self.attention_bias_idxs]
        return self

    def _bias(self) -> torch.Tensor:
        if self.training or self._cached_bias is None:
            return self.attention_biases[:, self.attention_bias_idxs]
        return self._cached_bias


class Attention4D(_BiasMixin):
    """EfficientFormerV2 MHSA: 8 heads, key_dim 32, attn_ratio 4; talking heads; local V."""

    def __init__(self, dim: int, resolution: int, stride: int = 1, heads: int = 8, key_dim: int = 32, attn_ratio: int = 4):
        super().__init__()
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim**-0.5
        self.d = attn_ratio * key_dim
        self.dh = self.d * heads
        nh_kd = key_dim * heads
        self.stride = stride
        if stride > 1:
            self.stride_conv = conv_bn(dim, dim, 3, stride, groups=dim)
            resolution = math.ceil(resolution / stride)
        self.resolution = resolution
        self.N = resolution * resolution
        self.q = conv_bn(dim, nh_kd)
        self.k = conv_bn(dim, nh_kd)
        self.v = conv_bn(dim, self.dh)
        self.v_local = conv_bn(self.dh, self.dh, 3, groups=self.dh)
        self.talking_head1 = nn.Conv2d(heads, heads, 1)
        self.talking_head2 = nn.Conv2d(heads, heads, 1)
        self.proj = nn.Sequential(nn.GELU(), nn.Conv2d(self.dh, dim, 1), nn.BatchNorm2d(dim))
        self._init_bias(heads, resolution, resolution, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        if self.stride > 1:
            x = self.stride_conv(x)
        r = self.resolution
        q = self.q(x).flatten(2).reshape(B, self.heads, -1, self.N).permute(0, 1, 3, 2)
        k = self.k(x).flatten(2).reshape(B, self.heads, -1, self.N)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.flatten(2).reshape(B, self.heads, -1, self.N).permute(0, 1, 3, 2)
        attn = (q @ k) * self.scale + self._bias()
        attn = self.talking_head1(attn).softmax(dim=-1)
        attn = self.talking_head2(attn)
        out = (attn @ v).transpose(2, 3).reshape(B, self.dh, r, r) + v_local
        if self.stride > 1:
            out = F.interpolate(out, size=(H, W), mode="bilinear", align_corners=False)
        return self.proj(out)


class LGQuery(nn.Module):
    """Local-global query of the attention downsampling: strided DWConv3x3 + stride-2 pool, 1x1 conv + BN."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.local = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin)
        self.pool = nn.AvgPool2d(1, 2, 0)
        self.proj = conv_bn(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.local(x) + self.pool(x))


class Attention4DDownsample(_BiasMixin):
    """Attention branch of the dual-path downsampling: 8 heads, key_dim 16, attn_ratio 4, no talking heads."""

    def __init__(self, dim: int, out_dim: int, resolution: int, heads: int = 8, key_dim: int = 16, attn_ratio: int = 4):
        super().__init__()
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim**-0.5
        self.dh = attn_ratio * key_dim * heads
        nh_kd = key_dim * heads
        self.resolution, self.resolution2 = resolution, math.ceil(resolution / 2)
        self.N, self.N2 = resolution * resolution, self.resolution2 * self.resolution2
        self.q = LGQuery(dim, nh_kd)
        self.k = conv_bn(dim, nh_kd)
        self.v = conv_bn(dim, self.dh)
        self.v_local = conv_bn(self.dh, self.dh, 3, 2, groups=self.dh)
        self.proj = nn.Sequential(nn.GELU(), nn.Conv2d(self.dh, out_dim, 1), nn.BatchNorm2d(out_dim))
        self._init_bias(heads, self.resolution2, resolution, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        q = self.q(x).flatten(2).reshape(B, self.heads, -1, self.N2).permute(0, 1, 3, 2)
        k = self.k(x).flatten(2).reshape(B, self.heads, -1, self.N)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.flatten(2).reshape(B, self.heads, -1, self.N).permute(0, 1, 3, 2)
        attn = ((q @ k) * self.scale + self._bias()).softmax(dim=-1)
        r2 = self.resolution2
        out = (attn @ v).transpose(2, 3).reshape(B, self.dh, r2, r2) + v_local
        return self.proj(out)


class Embedding(nn.Module):
    """Downsampling between stages: Conv3x3 s2 + BN, plus the attention branch when ``attention``."""

    def __init__(self, cin: int, cout: int, resolution: int = 0, attention: bool = False):
        super().__init__()
        self.conv = conv_bn(cin, cout, 3, 2)
        self.attn = Attention4DDownsample(cin, cout, resolution) if attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out if self.attn is None else self.attn(x) + out


class Mlp(nn.Module):
    """Unified FFN: 1x1 conv + BN + GELU, depthwise 3x3 + BN + GELU, 1x1 conv + BN."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = conv_bn(dim, hidden)
        self.mid = conv_bn(hidden, hidden, 3, groups=hidden)
        self.fc2 = conv_bn(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.mid(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """FFN block, with an optional MHSA token mixer before the FFN (each residual with layer scale)."""

    def __init__(self, dim: int, ratio: float, resolution: int, attention: bool, stride: int = 1, ls_init: float = 1e-5):
        super().__init__()
        if attention:
            self.token_mixer = Attention4D(dim, resolution, stride)
            self.layer_scale_1 = nn.Parameter(torch.full((dim, 1, 1), ls_init))
        else:
            self.token_mixer = None
        self.mlp = Mlp(dim, int(dim * ratio))
        self.layer_scale_2 = nn.Parameter(torch.full((dim, 1, 1), ls_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.token_mixer is not None:
            x = x + self.layer_scale_1 * self.token_mixer(x)
        return x + self.layer_scale_2 * self.mlp(x)


class EfficientFormerV2S0(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        resolution: int = 224,
        widths=S0_WIDTHS,
        depths=S0_DEPTHS,
        ratios=S0_RATIOS,
        vit_num: int = S0_VIT_NUM,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0] // 2, 3, 2, 1),
            nn.BatchNorm2d(widths[0] // 2),
            nn.GELU(),
            nn.Conv2d(widths[0] // 2, widths[0], 3, 2, 1),
            nn.BatchNorm2d(widths[0]),
            nn.GELU(),
        )
        stages = []
        res = resolution // 4
        for s, (width, depth) in enumerate(zip(widths, depths)):
            mods = []
            if s > 0:
                mods.append(Embedding(widths[s - 1], width, res, attention=(s == 3)))
                res //= 2
            for i in range(depth):
                attention = s >= 2 and i >= depth - vit_num
                mods.append(Block(width, ratios[s][i], res, attention, stride=2 if s == 2 else 1))
            stages.append(nn.Sequential(*mods))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(widths[-1])
        self.head = nn.Linear(widths[-1], num_classes)
        self.dist_head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor):
        x = self.norm(self.stages(self.stem(x))).flatten(2).mean(-1)
        logits, dist = self.head(x), self.dist_head(x)
        return (logits, dist) if self.training else (logits + dist) / 2


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    model = EfficientFormerV2S0().eval()
    n = num_params(model)
    print(
        f"hand-written EfficientFormerV2-S0: {n:,} parameters (expected {S0_PARAMS:,}): {'OK' if n == S0_PARAMS else 'MISMATCH'}"
    )
    with torch.no_grad():
        print("output shape:", tuple(model(torch.randn(1, 3, 224, 224)).shape))
