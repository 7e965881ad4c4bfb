"""Training-free accuracy proxies, computed on one randomly initialised supernet per estimator, so
every architecture is scored with the same (shared) weights, and callable on any ``nn.Module``:

- ``naswot`` (Mellor et al., "Neural Architecture Search without Training", ICML 2021): how differently
  the network's activation patterns separate a batch of inputs, logdet of the Hamming-similarity kernel;
- ``synflow`` (Tanaka et al., "Pruning neural networks without any data by iteratively conserving
  synaptic flow", NeurIPS 2020): the summed synaptic saliency |theta * dR/dtheta| of the network with
  absolute weights on an all-ones input, as a log;
- ``zico`` (Li et al., "ZiCo: Zero-shot NAS via inverse Coefficient of Variation on Gradients", ICLR
  2023): per weight tensor, the log of the summed mean/std of its gradients across batches, summed;
- ``params`` and ``macs``: the exact parameter count and multiply-accumulates in millions, the
  baselines every proxy should beat.

naswot and zico read a batch: real training images with ``data`` (``--data``; naswot is defined on
real images), Gaussian noise otherwise. Their rank correlation with trained accuracy is measured by
``bench/bench_estimators.py`` on the study of ``docs/accuracy-study.md`` (README, Benchmarks).

Proxies run at a quarter of the architecture's resolution (rounded to a multiple of 8, so the three
resolutions of the default space stay distinct: 48, 56, 64) and on a batch of 16 images. That keeps
naswot near 60 ms per architecture of the default space on one CPU thread. On 50 random architectures
of that space, naswot with 16 images ranks them as with 32 (Spearman 0.9999) in half the time, while an
eighth of the resolution would change the ranking (0.90) and leave stage 4 with 1x1 maps, on which
attention is degenerate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

import supernet
from search_spaces import Arch, Space
from supernet.runtime import torch_settings

from ..errors import BadInput
from .base import Estimator

PROXIES: tuple[str, ...] = ("naswot", "synflow", "zico", "params", "macs")
DEFAULT_PROXY = "naswot"
#: The proxies that are exact counts (the same numbers as the params and macs objectives).
COUNT_PROXIES = ("params", "macs")
#: The proxies that read a batch of images (real ones with --data, Gaussian noise otherwise).
DATA_PROXIES = ("naswot", "zico")


# ---- NASWOT ---------------------------------------------------------------------------------------
def naswot_kernel(codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mellor et al.'s kernel of binary activation codes: ``K[i, j]`` = number of units on which samples
    i and j agree (both active or both inactive), i.e. ``c c^T + (1 - c)(1 - c)^T`` summed over all units.

    Each tensor is one layer's codes with the batch first (any truthy value counts as active). The
    result is float64 and exact: float32 sums of 0/1 products are exact below 2**24 units per tensor.
    """
    kernel = None
    for c in codes:
        part = _agreement(c)
        kernel = part if kernel is None else kernel + part
    if kernel is None:
        raise ValueError("naswot_kernel() needs at least one tensor of codes")
    return kernel


def _agreement(codes: torch.Tensor) -> torch.Tensor:
    flat = codes.reshape(codes.shape[0], -1)
    if flat.dtype != torch.bool:
        flat = flat != 0
    units = flat.shape[1]
    if units >= 2**24:
        raise ValueError(f"{units} units in one tensor: float32 counting would not be exact")
    return _agreement_of(flat.to(torch.float32), units)


def _agreement_of(c: torch.Tensor, units: int) -> torch.Tensor:
    """c c^T + (1 - c)(1 - c)^T = 2 G - G_ii - G_jj + units with G = c c^T (G_ii = active units of i)."""
    gram = c @ c.T
    on = gram.diagonal()
    return (2 * gram - on[:, None] - on[None, :] + units).to(torch.float64)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """One row per sample, the units in memory order (their order does not matter to the kernel)."""
    per = t[0].numel()
    if t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)):
        return t.as_strided((t.shape[0], per), (per, 1))
    return t.reshape(t.shape[0], per)


def naswot_score(kernel: torch.Tensor) -> float:
    """log |det K| (slogdet in float64). K is a sum of Gram matrices, so its determinant is >= 0; it is
    0 (score -inf) only if two samples share every code, which a batch of Gaussian noise never does."""
    sign, logabsdet = torch.linalg.slogdet(kernel.to(torch.float64))
    return float(logabsdet) if sign > 0 else float("-inf")


#: The activations the networks of this project apply (supernet/layers.py and mixers.py call F.gelu and
#: F.relu; the others are listed so that a future nn.GELU / nn.ReLU / Tensor.relu is not missed).
_ACTIVATIONS = frozenset({F.gelu, F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_})


class _CodeKernel(TorchFunctionMode):
    """Accumulates the NASWOT kernel of every GELU/ReLU pre-activation (> 0) while active, without hooks
    on, or changes to, the model classes."""

    def __init__(self):
        super().__init__()
        self.kernel: torch.Tensor | None = None
        self.activations = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _ACTIVATIONS and args and isinstance(args[0], torch.Tensor):
            x = args[0].detach()
            c = torch.empty_like(x, dtype=torch.float32)  # x's memory layout: no transposing copy
            torch.gt(x, 0, out=c)  # one pass straight to 0/1 floats (bool then float takes two, 4x slower)
            part = _agreement_of(_rows(c), c[0].numel())
            self.kernel = part if self.kernel is None else self.kernel + part
            self.activations += 1
        return func(*args, **(kwargs or {}))


# ---- synflow ---------------------------------------------------------------------------------------
def synflow(module: nn.Module, input_shape: Sequence[int]) -> float:
    """Tanaka et al.'s synaptic flow: with every weight (and floating buffer) replaced by its absolute
    value, in float64, R = sum(module(ones(input_shape))) in eval mode; the score is the sum over
    parameters of |theta * dR/dtheta|. The module itself is left unchanged (it runs on copies)."""
    params = {name: p.detach().abs().to(torch.float64).requires_grad_() for name, p in module.named_parameters()}
    buffers = {name: b.detach().abs().to(torch.float64) if b.is_floating_point() else b for name, b in module.named_buffers()}
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        return _synflow(lambda x: functional_call(module, {**params, **buffers}, (x,)), list(params.values()), input_shape)
    finally:
        for m, training in modes:
            m.training = training


def _synflow(forward: Callable[[torch.Tensor], torch.Tensor], params: list[torch.Tensor], input_shape: Sequence[int]) -> float:
    """The synflow sum for a forward over float64 leaf tensors `params` that are already absolute values."""
    with torch.enable_grad(), _Float64Depthwise():
        out = forward(torch.ones(tuple(input_shape), dtype=torch.float64))
        grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    with torch.no_grad():
        return float(sum((p * g).abs().sum() for p, g in zip(params, grads) if g is not None))


# ---- ZiCo --------------------------------------------------------------------------------------------
def _zico(
    forward: Callable[[torch.Tensor], torch.Tensor],
    layers: Sequence[torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    splits: int,
) -> float:
    """ZiCo of a forward over leaf weight tensors `layers`: the batch is cut into `splits` parts, the
    cross-entropy gradient of every weight taken on each, and per tensor the sum over its entries of
    mean |g| / std(g) across parts (entries whose gradient does not vary are left out) is logged."""
    if splits < 2 or len(images) < splits:
        raise ValueError(f"zico needs at least 2 parts of at least one image each, got {len(images)} images in {splits} parts")
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    with torch.enable_grad():
        for x, y in zip(images.chunk(splits), labels.chunk(splits)):
            out = forward(x)
            logits = torch.stack(out).mean(0) if isinstance(out, tuple) else out
            for store, g in zip(grads, torch.autograd.grad(F.cross_entropy(logits, y), list(layers), allow_unused=True)):
                if g is not None:
                    store.append(g.detach().to(torch.float64))
    score = 0.0
    for store in grads:
        if len(store) < splits:
            continue
        g = torch.stack(store)
        std = g.std(dim=0, unbiased=False)
        varies = std > 0
        total = float((g.abs().mean(dim=0)[varies] / std[varies]).sum()) if varies.any() else 0.0
        if total > 0:
            score += math.log(total)
    return score


def zico(module: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, splits: int = 2) -> float:
    """Li et al.'s ZiCo ("Zero-shot NAS via inverse Coefficient of Variation on Gradients", ICLR 2023)
    of any module on a labelled batch: sum over weight tensors (two or more dimensions: convolutions,
    linear layers, attention projections) of log sum_theta E|dL/dtheta| / std(dL/dtheta), the statistics
    over `splits` equal parts of the batch, L the cross-entropy, in train mode. Weights whose gradients
    are large and consistent across batches score high: the paper relates this to faster convergence
    and better generalisation. The module is left unchanged (BatchNorm statistics included)."""
    params, buffers, restore = _detached(module, training=True)
    try:
        weights = [p.requires_grad_() for p in params.values() if p.dim() >= 2]
        return _zico(lambda x: functional_call(module, {**params, **buffers}, (x,)), weights, images, labels, splits)
    finally:
        restore()


def naswot(module: nn.Module, images: torch.Tensor) -> float:
    """Mellor et al.'s NASWOT of any module on a batch of images: log |det K| of the kernel of binary
    codes of every GELU/ReLU's input (see :func:`naswot_kernel`), in train mode. The module is left
    unchanged (its BatchNorm statistics included)."""
    params, buffers, restore = _detached(module, training=True)
    codes = _CodeKernel()
    try:
        with torch.no_grad(), codes:
            functional_call(module, {**params, **buffers}, (images,))
    finally:
        restore()
    if codes.kernel is None:
        raise BadInput(f"naswot: {type(module).__name__} applies no GELU or ReLU, so it has no activation codes")
    return naswot_score(codes.kernel)


def _detached(
    module: nn.Module, *, training: bool
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Callable[[], None]]:
    """Copies of the module's parameters and buffers (a stateless forward on them leaves the module's
    own untouched) with the module put in `training` mode, and the function that restores its modes."""
    params = {name: p.detach().clone() for name, p in module.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
    modes = [(m, m.training) for m in module.modules()]
    module.train(training)

    def restore() -> None:
        for m, mode in modes:
            m.training = mode

    return params, buffers, restore


class _Float64Depthwise(TorchFunctionMode):
    """Runs float64 depthwise convolutions as unfold + multiply-add, which computes the same sums.

    On CPU, float64 convolutions take the reference path, which loops over groups: one small convolution
    per channel forward and backward (about 130 per depthwise layer of 1024 channels, half of synflow's
    time). Other calls pass through unchanged.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.conv2d and not kwargs and len(args) == 7 and _is_depthwise64(*args):
            return _depthwise(*args[:6])
        return func(*args, **(kwargs or {}))


def _is_depthwise64(x, weight, bias, stride, padding, dilation, groups) -> bool:
    return (
        isinstance(x, torch.Tensor)
        and x.dtype == torch.float64
        and x.dim() == 4
        and groups > 1
        and x.shape[1] == groups == weight.shape[0]
        and weight.shape[1] == 1
        and all(isinstance(v, (tuple, list)) and len(v) == 2 for v in (stride, padding, dilation))
    )


def _depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation) -> torch.Tensor:
    B, C, H, W = x.shape
    kh, kw = weight.shape[-2:]
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (B, C*kh*kw, positions)
    ho = (H + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = (cols.view(B, C, kh * kw, -1) * weight.reshape(1, C, kh * kw, 1)).sum(dim=2).view(B, C, ho, wo)
    return out if bias is None else out + bias.view(1, C, 1, 1)


def _forward(layers: Sequence[nn.Module], x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Run layers in sequence. Channels-last maps make the CPU convolutions of these small maps up to
    several times faster (a 1x1 conv on a 32x48x14x14 batch: 22 ms NCHW, 2.4 ms channels-last); the
    mixers' reshapes return contiguous maps, so the layout is restored before every layer."""
    for layer in layers:
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        x = layer(x)
    return x


def proxy_resolution(resolution: int, divisor: int = 4) -> int:
    """The input side a proxy runs at: resolution / divisor, rounded to a multiple of 8 (at least 32, so
    that every stage has a map of at least 1x1; the models run at any size)."""
    return max(32, 8 * round(resolution / divisor / 8))


# ---- the estimator ------------------------------------------------------------------------------------
def proxy_network(space: Space, seed: int, *, absolute: bool, training: bool) -> supernet.SuperNet:
    """A randomly initialised supernet of `space` for proxies (seeded, without touching the caller's
    random state), its layer scales at 1 and, for synflow (`absolute`), its tensors absolute and float64.

    Layer scales start at 1e-5 (for stable training), which makes every mixer and FFN branch ~1e-5 of its
    skip path at init: a random network would be almost just the stem, the downsamplings and the head,
    and no proxy could tell depths, ratios or mixers apart. At 1.0 each branch counts as much as its
    input, as it comes to in a trained network."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = supernet.build(space)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("layer_scale"):
                p.fill_(1.0)
        if absolute:  # synflow's "linearised" network
            net.double()
            for t in list(net.parameters()) + list(net.buffers()):
                if t.is_floating_point():
                    t.abs_()
    net.requires_grad_(False)
    return net.train(training)


class ProxyEstimator(Estimator):
    """A training-free proxy score per architecture, cached by ``arch.id``.

    Deterministic: the same (space, proxy, seed, options) gives bit-identical scores in any process on
    the same machine (the network is initialised under ``torch.manual_seed(seed)`` in a forked RNG state,
    the input batch comes from its own generator, scores are computed on one torch thread, and nothing
    global is left changed). Another CPU may pick other convolution kernels and differ in the last bits.
    The network is built on first use and not pickled.
    """

    def __init__(
        self,
        space: Space,
        proxy: str = DEFAULT_PROXY,
        *,
        seed: int = 0,
        batch_size: int = 16,
        resolution_divisor: int = 4,
        channels_last: bool = True,
        data: str | None = None,
    ):
        if proxy not in PROXIES:
            raise BadInput(f"unknown proxy {proxy!r}; accepted: {', '.join(PROXIES)}")
        if batch_size < 2:  # train-mode BatchNorm needs two samples
            raise ValueError(f"proxy batch size must be at least 2, got {batch_size}")
        self.space, self.proxy, self.seed, self.data = space, proxy, seed, data
        self.batch_size, self.resolution_divisor, self.channels_last = batch_size, resolution_divisor, channels_last
        self.name = f"proxy:{proxy}" + (f"@{data}" if data and proxy in DATA_PROXIES else "")
        self._scores: dict[str, float] = {}
        self._net: supernet.SuperNet | None = None
        self._inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._images: tuple[torch.Tensor, torch.Tensor, Any] | None = None
        if data and proxy in DATA_PROXIES:
            self._real_batch()  # a bad --data fails now, in one line, before any search work

    def __repr__(self) -> str:
        data = f", data={self.data!r}" if self.data else ""
        return f"ProxyEstimator({self.space.name!r}, proxy={self.proxy!r}, seed={self.seed}{data})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_net"], state["_inputs"], state["_images"] = None, {}, None
        return state

    def estimate(self, archs: Sequence[Arch]) -> list[float]:
        out = []
        # One torch thread: channels-last convolutions split their sums differently with two, which moves
        # naswot scores by a few 1e-8 relative (some codes flip sign), so a fixed count keeps scores
        # bit-identical whatever the caller's setting; these small layers gain nothing from a second
        # thread anyway (naswot: 54 ms per architecture with one or two).
        with torch_settings(threads=1):
            for arch in archs:
                key = arch.id
                score = self._scores.get(key)
                if score is None:
                    if arch.search_space is not self.space:
                        self.space.check(arch)  # same choices under another reference is fine; otherwise this raises
                    score = self._scores[key] = self._score(arch)
                out.append(score)
        return out

    def prepare(self, archs: Sequence[Arch]) -> None:
        """Build what scoring `archs` needs (the network, their input batches) and warm it up, caching no
        score, so that a benchmark times the scores alone."""
        if self.proxy in COUNT_PROXIES:
            return
        self._network()
        if self.proxy != "synflow":
            for side in {proxy_resolution(arch.resolution, self.resolution_divisor) for arch in archs}:
                self._batch(side)
        if archs:  # one score thrown away: torch's first-call costs (kernel choice, allocations) paid here
            with torch_settings(threads=1):
                self._score(archs[0])

    # ---- the proxies ---------------------------------------------------------------------------------
    def _score(self, arch: Arch) -> float:
        if self.proxy in ("params", "macs"):
            counts = supernet.count(arch)
            return (counts.params if self.proxy == "params" else counts.macs) / 1e6
        side = proxy_resolution(arch.resolution, self.resolution_divisor)
        if self.proxy == "synflow":
            return self._synflow(arch, side)
        layers = self._layers(arch)
        images, labels = self._batch(side)
        if self.proxy == "naswot":
            # BN in train mode also updates the running statistics of this private network; train-mode
            # outputs never read them, so scores do not depend on the order architectures come in.
            codes = _CodeKernel()
            with torch.no_grad(), codes:
                _forward(layers, images, self.channels_last)
            return naswot_score(codes.kernel)
        weights = [p for layer in layers for p in layer.parameters() if p.dim() >= 2]
        return _zico(lambda x: _forward(layers, x, self.channels_last), weights, images, labels, splits=2)

    def _network(self) -> supernet.SuperNet:
        if self._net is None:
            # naswot and zico run in train mode, as their authors: batch statistics centre every BN
            # output, so a unit's code tells the samples apart rather than reflecting the random init's
            # offsets. synflow runs in eval mode (batch statistics would make it depend on the batch).
            self._net = proxy_network(self.space, self.seed, absolute=self.proxy == "synflow", training=self.proxy != "synflow")
        return self._net

    def _layers(self, arch: Arch) -> list[nn.Module]:
        return self._network().shared_layers(arch, requires_grad=self.proxy in ("synflow", "zico"))

    def _batch(self, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The proxy's input at `side` px: `batch_size` training images of --data (a class-balanced draw
        from the seed, classes in turn) with their labels, or Gaussian noise with seeded random labels."""
        batch = self._inputs.get(side)
        if batch is None:
            if self.data:
                from ..train.data import prepare  # imported here: the proxies need no data set otherwise

                images, labels, data = self._real_batch()
                batch = (prepare(images, data, side), labels)
            else:
                gen = torch.Generator().manual_seed(self.seed)
                noise = torch.randn(self.batch_size, 3, side, side, generator=gen)
                batch = (noise, torch.randint(0, self.space.num_classes, (self.batch_size,), generator=gen))
            batch = self._inputs[side] = batch
        return batch

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor, Any]:
        if self._images is None:
            from ..train.data import load_data

            data = load_data(self.data, seed=self.seed)
            if data.train.images is None:
                raise BadInput(f"--data {self.data}: proxies read in-memory data sets (fashion-mnist, IDX files, synthetic)")
            if len(data.train) < self.batch_size:
                raise BadInput(
                    f"--data {self.data}: {len(data.train)} training images, fewer than the proxy's batch of {self.batch_size}"
                )
            try:
                batch = data.subset(self.batch_size, seed=self.seed).train  # class-balanced
            except BadInput:
                raise BadInput(
                    f"--data {self.data}: some class has too few training images for a class-balanced batch of {self.batch_size}"
                ) from None
            # classes in turn (0, 1, ..., 0, 1, ...): every prefix of the batch, zico's first split included, is balanced
            labels = batch.labels.tolist()
            turn, seen = [], {}
            for label in labels:
                turn.append(seen.get(label, 0))
                seen[label] = turn[-1] + 1
            order = sorted(range(len(labels)), key=lambda i: (turn[i], labels[i]))
            self._images = (batch.images[order], batch.labels[order], data)
        return self._images

    def _synflow(self, arch: Arch, side: int) -> float:
        layers = self._layers(arch)
        params = [p for layer in layers for p in layer.parameters()]
        score = _synflow(lambda x: _forward(layers, x, False), params, (1, 3, side, side))  # float64: NCHW is faster
        return math.log(score) if score > 0 else float("-inf")


__all__ = [
    "ProxyEstimator",
    "PROXIES",
    "DEFAULT_PROXY",
    "DATA_PROXIES",
    "COUNT_PROXIES",
    "naswot",
    "naswot_kernel",
    "naswot_score",
    "synflow",
    "zico",
    "proxy_resolution",
    "proxy_network",
]
