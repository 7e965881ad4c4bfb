"""Building blocks every layer of the network uses: conv + BatchNorm, layer scale, the residual with
stochastic depth, and the learned relative-position attention bias.

Every tensor whose size depends on the width is laid out so that a narrower layer's weights are the
leading slice of a wider one's; the supernet relies on that.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (with bias, as the reference) followed by BatchNorm."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups),
            bn=nn.BatchNorm2d(cout),
        )
    )


def conv_bn_params(cin: int, cout: int, kernel: int = 1, groups: int = 1) -> int:
    return cout * (cin // groups) * kernel * kernel + cout + 2 * cout


def layer_scale(dim: int, init: float = 1e-5) -> nn.Parameter:
    return nn.Parameter(torch.full((dim, 1, 1), init))


def residual(layer: nn.Module, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``x + layer_scale * branch``; in training the branch is dropped per sample with probability
    ``layer.drop_path`` (stochastic depth, rescaled to keep its expectation), which regularises deep
    networks and, in the supernet, lets a block learn to be removable (elastic depth)."""
    branch = layer.layer_scale * branch
    rate = layer.drop_path
    if rate > 0 and layer.training:
        keep = 1.0 - rate
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        branch = branch * mask.div_(keep)
    return x + branch


class RelativePositionBias(nn.Module):
    """Learned attention bias per head indexed by the (|dy|, |dx|) offset between query and key.

    The table is (heads, T, T); a query grid that is the key grid subsampled by ``step`` (attention
    downsampling) uses offsets |step*a - b|. A map larger than the table is served by bicubic
    interpolation of the table, so a model runs at any resolution.
    """

    def __init__(self, heads: int, size: int):
        super().__init__()
        self.attention_biases = nn.Parameter(torch.zeros(heads, size, size))
        self._index: dict[tuple, torch.Tensor] = {}

    def forward(self, q_hw: tuple[int, int], k_hw: tuple[int, int], step: int = 1) -> torch.Tensor:
        table = self.attention_biases
        rows, cols = table.shape[-2:]
        need_rows, need_cols = max(rows, k_hw[0]), max(cols, k_hw[1])
        if (need_rows, need_cols) != (rows, cols):
            table = F.interpolate(table[None], size=(need_rows, need_cols), mode="bicubic", align_corners=False)[0]
        key = (q_hw, k_hw, step, need_cols, table.device)
        index = self._index.get(key)
        if index is None:
            index = _relative_index(q_hw, k_hw, step, need_cols, table.device)
            self._index[key] = index
        return table.flatten(1)[:, index]

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_index"] = {}
        return state


def _relative_index(q_hw: tuple[int, int], k_hw: tuple[int, int], step: int, row: int, device) -> torch.Tensor:
    qy, qx = torch.meshgrid(
        torch.arange(q_hw[0], device=device) * step, torch.arange(q_hw[1], device=device) * step, indexing="ij"
    )
    ky, kx = torch.meshgrid(torch.arange(k_hw[0], device=device), torch.arange(k_hw[1], device=device), indexing="ij")
    dy = (qy.reshape(-1, 1) - ky.reshape(1, -1)).abs()
    dx = (qx.reshape(-1, 1) - kx.reshape(1, -1)).abs()
    return dy * row + dx


__all__ = ["conv_bn", "conv_bn_params", "layer_scale", "residual", "RelativePositionBias"]
