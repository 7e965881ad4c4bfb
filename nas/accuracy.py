"""Accuracy estimators for the search: the interface, and training-free proxies.

The search ranks architectures by an accuracy estimate, and it calls only :class:`AccuracyEstimator`
(``name``, ``estimate``, ``reference``). Until the supernet can be trained, the estimates are
training-free proxies from the literature (REFERENCE.md section 5), computed on one randomly initialised
supernet per estimator, so every architecture is scored with the same (shared) weights:

- ``naswot`` (Mellor et al., "Neural Architecture Search without Training"): how differently the
  network's activation patterns separate a batch of inputs, logdet of the Hamming-similarity kernel;
- ``synflow`` (Tanaka et al., "Pruning neural networks without any data"): the summed synaptic
  saliency |theta * dR/dtheta| of the network with absolute weights on an all-ones input, as a log;
- ``params``: the exact parameter count in millions, the baseline every proxy should beat.

No proxy has been validated on this hybrid conv/attention space: their rank correlation with trained
accuracy is still to be measured (and may change :data:`DEFAULT_PROXY`).

Proxies run at a quarter of the architecture's resolution (rounded to a multiple of 8, so the three
resolutions of the default space stay distinct: 48, 56, 64) and, for naswot, on a batch of 16 images
of Gaussian noise (no data set is needed). That keeps naswot near 60 ms per architecture of the default
space on one CPU thread. On 50 random architectures of that space, naswot with 16 images ranks them as
with 32 (Spearman 0.9999) in half the time, while an eighth of the resolution would change the ranking
(0.90) and leave stage 4 with 1x1 maps, on which attention is degenerate.
"""

from __future__ import annotations

import abc
import copy
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

import supernet
from search_spaces import Arch, LayerSpec, Space, SpaceError

from .errors import BadInput

KINDS = ("proxy", "supernet", "predictor")
PROXIES: tuple[str, ...] = ("naswot", "synflow", "params")
DEFAULT_PROXY = "naswot"


class AccuracyEstimator(abc.ABC):
    """What the search needs from an accuracy estimate: higher is better, deterministic per architecture."""

    #: Reported with every estimate as ``accuracy_source``, e.g. ``proxy:naswot``.
    name: str

    @abc.abstractmethod
    def estimate(self, archs: Sequence[Arch]) -> list[float]:
        """One score per architecture, in order; higher means more accurate."""

    @abc.abstractmethod
    def reference(self) -> tuple[float, float]:
        """(worst, scale) for normalising scores in the hypervolume: ``z = (score - worst) / scale``."""


def make_estimator(kind: str = "proxy", space: Space | str | None = None, *, proxy: str | None = None, seed: int = 0,
                   **options: Any) -> AccuracyEstimator:
    """The estimator named by ``--accuracy`` (and ``--proxy``) for a space. Bad names raise BadInput."""
    if kind not in KINDS:
        raise BadInput(f"unknown accuracy estimator {kind!r}; accepted: {', '.join(KINDS)}")
    supernet_ckpt, data = options.pop("supernet", None), options.pop("data", None)
    if kind == "proxy" and (supernet_ckpt or data):
        raise BadInput("--supernet and --data are for --accuracy supernet or predictor, not the proxy")
    if kind != "proxy" and not supernet_ckpt:
        raise BadInput(f"--accuracy {kind} needs --supernet CKPT, a supernet trained with nas train "
                       "(e.g. nas train --data fashion-mnist --out supernet.pt)")
    if kind != "proxy" and proxy is not None:
        raise BadInput(f"--proxy is for --accuracy proxy, not {kind}")
    if space is None:
        raise TypeError("make_estimator() needs a space")
    if isinstance(space, str):
        from search_spaces import load

        space = load(space)
    if kind == "proxy":
        return ProxyEstimator(space, proxy=DEFAULT_PROXY if proxy is None else proxy, seed=seed, **options)
    measured = SupernetEstimator(supernet_ckpt, space, data=data, seed=seed, **options)
    return measured if kind == "supernet" else PredictorEstimator(measured, space, seed=seed)


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
    buffers = {name: b.detach().abs().to(torch.float64) if b.is_floating_point() else b
               for name, b in module.named_buffers()}
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        return _synflow(lambda x: functional_call(module, {**params, **buffers}, (x,)), list(params.values()),
                        input_shape)
    finally:
        for m, training in modes:
            m.training = training


def _synflow(forward: Callable[[torch.Tensor], torch.Tensor], params: list[torch.Tensor],
             input_shape: Sequence[int]) -> float:
    """The synflow sum for a forward over float64 leaf tensors `params` that are already absolute values."""
    with torch.enable_grad(), _Float64Depthwise():
        out = forward(torch.ones(tuple(input_shape), dtype=torch.float64))
        grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    with torch.no_grad():
        return float(sum((p * g).abs().sum() for p, g in zip(params, grads) if g is not None))


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
    return (isinstance(x, torch.Tensor) and x.dtype == torch.float64 and x.dim() == 4 and groups > 1
            and x.shape[1] == groups == weight.shape[0] and weight.shape[1] == 1
            and all(isinstance(v, (tuple, list)) and len(v) == 2 for v in (stride, padding, dilation)))


def _depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation) -> torch.Tensor:
    B, C, H, W = x.shape
    kh, kw = weight.shape[-2:]
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (B, C*kh*kw, positions)
    ho = (H + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = (cols.view(B, C, kh * kw, -1) * weight.reshape(1, C, kh * kw, 1)).sum(dim=2).view(B, C, ho, wo)
    return out if bias is None else out + bias.view(1, C, 1, 1)


# ---- the proxy network: one random supernet, its subnets as plain modules ------------------------------
class _SharedNet:
    """A randomly initialised supernet of the space whose subnets run as plain layer modules.

    Each layer module (one per slot and spec, built once on the meta device and cached) holds leading
    slices of the supernet's full-size tensors as its own parameters: the same numbers the active
    supernet would use (``SuperNet.set_active``), without its per-call ``functional_call`` (which costs
    about a fifth of a small forward) and with gradients of subnet size, not of the full tensors.
    """

    def __init__(self, space: Space, seed: int, *, absolute: bool, training: bool, max_layers: int = 8192):
        self.absolute, self.training, self.max_layers = absolute, training, max_layers
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's generator
            torch.manual_seed(seed)
            self.net = supernet.build(space)
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                # Layer scales start at 1e-5 (for stable training), which makes every mixer and FFN branch
                # ~1e-5 of its skip path at init: a random network would be almost just the stem, the
                # downsamplings and the head, and no proxy could tell depths, ratios or mixers apart. At
                # 1.0 each branch counts as much as its input, as it comes to in a trained network.
                if name.endswith("layer_scale"):
                    p.fill_(1.0)
            if absolute:  # synflow's "linearised" network: absolute weights, float64
                self.net.double()
                for t in list(self.net.parameters()) + list(self.net.buffers()):
                    if t.is_floating_point():
                        t.abs_()
        self.net.requires_grad_(False)
        self._layers: OrderedDict[tuple[str, LayerSpec], nn.Module] = OrderedDict()
        self._skeletons: dict[LayerSpec, nn.Module] = {}  # weightless, one per distinct layer

    def layers(self, arch: Arch) -> list[nn.Module]:
        return [self._layer(spec) for spec in arch.layers()]

    def _layer(self, spec: LayerSpec) -> nn.Module:
        key = (spec.name, spec)  # LayerSpec equality ignores the slot name
        layer = self._layers.get(key)
        if layer is not None:
            self._layers.move_to_end(key)
            return layer
        skeleton = self._skeletons.get(spec)
        if skeleton is None:
            with torch.device("meta"):
                skeleton = self._skeletons[spec] = supernet.build_layer(spec)
        layer = copy.deepcopy(skeleton)  # a third of the cost of building one
        full = self.net.slots[spec.name][spec.kind]
        for name, t in list(layer.named_parameters()) + list(layer.named_buffers()):
            prefix, _, attr = name.rpartition(".")
            owner = layer.get_submodule(prefix)
            piece = _leading(full.get_parameter(name) if isinstance(t, nn.Parameter) else full.get_buffer(name), t.shape)
            # a parameter made from a slice aliases its storage: no copy, and its own (subnet-size) gradient
            setattr(owner, attr, nn.Parameter(piece, requires_grad=self.absolute) if isinstance(t, nn.Parameter) else piece)
        layer.train(self.training)
        self._layers[key] = layer
        if len(self._layers) > self.max_layers:
            self._layers.popitem(last=False)
        return layer


def _leading(full: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return full if full.shape == shape else full[tuple(slice(0, s) for s in shape)]


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


@contextmanager
def _one_thread() -> Iterator[None]:
    """Compute on one torch thread, then restore the caller's setting. Channels-last convolutions split
    their sums differently with two threads, which moves naswot scores by a few 1e-8 relative (some codes
    flip sign), so a fixed count keeps scores bit-identical whatever the caller's setting; these small
    layers gain nothing from a second thread anyway (naswot: 54 ms per architecture with one or two)."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


# ---- the estimator ------------------------------------------------------------------------------------
class ProxyEstimator(AccuracyEstimator):
    """A training-free proxy score per architecture, cached by ``arch.id``.

    Deterministic: the same (space, proxy, seed, options) gives bit-identical scores in any process on
    the same machine (the network is initialised under ``torch.manual_seed(seed)`` in a forked RNG state,
    the input batch comes from its own generator, scores are computed on one torch thread, and nothing
    global is left changed). Another CPU may pick other convolution kernels and differ in the last bits.
    The network is built on first use and not pickled.
    """

    def __init__(self, space: Space, proxy: str = DEFAULT_PROXY, *, seed: int = 0, batch_size: int = 16,
                 resolution_divisor: int = 4, channels_last: bool = True):
        if proxy not in PROXIES:
            raise BadInput(f"unknown proxy {proxy!r}; accepted: {', '.join(PROXIES)}")
        if batch_size < 2:  # train-mode BatchNorm needs two samples
            raise ValueError(f"proxy batch size must be at least 2, got {batch_size}")
        self.space, self.proxy, self.seed = space, proxy, seed
        self.batch_size, self.resolution_divisor, self.channels_last = batch_size, resolution_divisor, channels_last
        self.name = f"proxy:{proxy}"
        self._scores: dict[str, float] = {}
        self._reference: tuple[float, float] | None = None
        self._net: _SharedNet | None = None
        self._inputs: dict[int, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"ProxyEstimator({self.space.name!r}, proxy={self.proxy!r}, seed={self.seed})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_net"], state["_inputs"] = None, {}
        return state

    def estimate(self, archs: Sequence[Arch]) -> list[float]:
        out = []
        with _one_thread():
            for arch in archs:
                key = arch.id
                score = self._scores.get(key)
                if score is None:
                    if arch.search_space is not self.space:
                        self.space.check(arch)  # same choices under another reference is fine; otherwise this raises
                    score = self._scores[key] = self._score(arch)
                out.append(score)
        return out

    def reference(self) -> tuple[float, float]:
        if self._reference is None:
            worst, best = self.estimate([self.space.smallest(), self.space.largest()])
            scale = best - worst
            self._reference = (worst, scale if math.isfinite(scale) and scale > 0 else 1.0)
        return self._reference

    # ---- the proxies ---------------------------------------------------------------------------------
    def _score(self, arch: Arch) -> float:
        if self.proxy == "params":
            return supernet.count(arch).params / 1e6
        side = proxy_resolution(arch.resolution, self.resolution_divisor)
        if self.proxy == "naswot":
            return self._naswot(arch, side)
        return self._synflow(arch, side)

    def _network(self) -> _SharedNet:
        if self._net is None:
            # naswot runs in train mode, as Mellor et al.: batch statistics centre every BN output, so a
            # unit's code tells the samples apart rather than reflecting the random init's offsets.
            # synflow runs in eval mode (batch statistics would make it depend on the batch).
            self._net = _SharedNet(self.space, self.seed, absolute=self.proxy == "synflow",
                                   training=self.proxy == "naswot")
        return self._net

    def _naswot(self, arch: Arch, side: int) -> float:
        layers = self._network().layers(arch)
        x = self._inputs.get(side)
        if x is None:
            gen = torch.Generator().manual_seed(self.seed)
            x = self._inputs[side] = torch.randn(self.batch_size, 3, side, side, generator=gen)
        # BN in train mode also updates the running statistics of this private network; train-mode
        # outputs never read them, so scores do not depend on the order architectures come in.
        codes = _CodeKernel()
        with torch.no_grad(), codes:
            _forward(layers, x, self.channels_last)
        return naswot_score(codes.kernel)

    def _synflow(self, arch: Arch, side: int) -> float:
        layers = self._network().layers(arch)
        params = [p for layer in layers for p in layer.parameters()]
        score = _synflow(lambda x: _forward(layers, x, False), params, (1, 3, side, side))  # float64: NCHW is faster
        return math.log(score) if score > 0 else float("-inf")


# ---- the trained supernet ---------------------------------------------------------------------------
class SupernetEstimator(AccuracyEstimator):
    """Top-1 (%) of each architecture with a trained supernet's weights on the validation split of its
    data (``nas.train.evaluate_subnet``: the subnet extracted, its BatchNorm statistics recalibrated on a
    few training batches). The search space's architectures are scored as the same genes in the
    checkpoint's space (its classes, and its resolution where the search's is not trained), so a search
    can rank with a supernet trained on small images while its latency is that of the device's input.
    Results are cached by architecture id; the checkpoint and data are loaded on first use (and not
    pickled), so Ray workers each load them once.
    """

    name = "supernet"

    def __init__(self, checkpoint: str | Path, space: Space, *, data: str | None = None, seed: int = 0,
                 calib_batches: int | None = None, limit: int | None = None, batch_size: int = 256):
        from .train import load_checkpoint

        self.path, self.space, self.data_source, self.seed = str(checkpoint), space, data, seed
        self.limit, self.batch_size = limit, batch_size
        ckpt = load_checkpoint(self.path)  # fails fast, one line, on a bad file
        if ckpt.kind != "supernet":
            raise BadInput(f"{self.path} holds one trained architecture, not a supernet (nas train without --arch)")
        for arch in (space.smallest(), space.largest()):
            try:
                ckpt.adapt(arch)
            except SpaceError as exc:
                raise BadInput(f"{self.path}: the supernet's space {ckpt.space.name!r} cannot run architectures of "
                               f"{space.name!r} ({str(exc).splitlines()[0]})") from None
        self.calib_batches = calib_batches if calib_batches is not None else int(ckpt.settings.get("calib_batches", 8))
        self._cache: dict[str, float] = {}
        self._loaded: tuple[Any, Any, Any] | None = None
        self._reference: tuple[float, float] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}

    def _load(self) -> tuple[Any, Any, Any]:
        if self._loaded is None:
            from .train import load_checkpoint

            ckpt = load_checkpoint(self.path)
            self._loaded = (ckpt, ckpt.model(), ckpt.data(self.data_source))
        return self._loaded

    def estimate(self, archs: Sequence[Arch]) -> list[float]:
        from .train import evaluate_subnet

        out = []
        for arch in archs:
            if arch.id not in self._cache:
                ckpt, net, data = self._load()
                self._cache[arch.id] = float(evaluate_subnet(net, ckpt.adapt(arch), data, batch_size=self.batch_size,
                                                             calib_batches=self.calib_batches, limit=self.limit,
                                                             seed=self.seed))
            out.append(self._cache[arch.id])
        return out

    def reference(self) -> tuple[float, float]:
        if self._reference is None:
            worst, best = self.estimate([self.space.smallest(), self.space.largest()])
            self._reference = (worst, best - worst if best > worst else 1.0)
        return self._reference


# ---- the predictor ----------------------------------------------------------------------------------
class PredictorEstimator(AccuracyEstimator):
    """A regressor of (architecture -> measured accuracy), refitted as measurements come in, that lets
    the search measure only the candidates worth measuring.

    ``estimate`` measures with the `base` estimator (the supernet) and learns from the result;
    ``predict`` gives the regressor's values once `warmup` architectures are measured (None before).
    The search screens each batch with it (``nas.search.SearchContext``): candidates whose predicted
    accuracy would put them on the Pareto front are measured, the others keep the prediction and are
    recorded with ``accuracy_source`` ``predictor``. Features: ``nas.surrogate.Features`` (one-hot genes
    in use, log parameters and log MACs); the regressor is scikit-learn's extremely randomised trees (good
    with a few dozen samples, no scaling needed, deterministic under a seed).
    """

    name = "predictor"

    def __init__(self, base: AccuracyEstimator, space: Space, *, warmup: int = 40, seed: int = 0, trees: int = 200):
        if warmup < 2:
            raise ValueError(f"the predictor needs at least 2 warm-up measurements, got {warmup}")
        self.base, self.space, self.warmup, self.seed, self.trees = base, space, warmup, seed, trees
        self._seen: dict[str, int] = {}
        self._x: list[Any] = []
        self._y: list[float] = []
        self._model: Any = None
        self._fitted_on = 0
        self._features: Any = None

    @property
    def measured_source(self) -> str:
        """``accuracy_source`` of measured entries (the base estimator's name)."""
        return self.base.name

    @property
    def measured(self) -> int:
        return len(self._y)

    def features(self, archs: Sequence[Arch]) -> Any:
        if self._features is None:
            from .surrogate import Features

            self._features = Features(self.space)
        return self._features(self._features.codes(archs))

    def observe(self, archs: Sequence[Arch], values: Sequence[float]) -> None:
        """Learn from measured accuracies (also those of a resumed run's earlier trials)."""
        new = [(a, float(v)) for a, v in zip(archs, values) if a.id not in self._seen and math.isfinite(float(v))]
        if not new:
            return
        for row, (arch, value) in zip(self.features([a for a, _ in new]), new):
            self._seen[arch.id] = len(self._y)
            self._x.append(row)
            self._y.append(value)

    def estimate(self, archs: Sequence[Arch]) -> list[float]:
        values = [float(v) for v in self.base.estimate(archs)]
        self.observe(archs, values)
        return values

    def predict(self, archs: Sequence[Arch]) -> Any:
        """Predicted accuracies (a numpy array), or None until `warmup` architectures are measured."""
        if self.measured < self.warmup or not archs:
            return None
        # Refitted each time the measurements grow by a tenth, on exactly the first `size` of them: the
        # model is a function of the measurement count, so a resumed search predicts as the uninterrupted one.
        size = self.warmup
        while max(size + 1, math.ceil(size * 1.1)) <= self.measured:
            size = max(size + 1, math.ceil(size * 1.1))
        if self._model is None or size != self._fitted_on:
            import numpy as np
            from sklearn.ensemble import ExtraTreesRegressor

            self._model = ExtraTreesRegressor(n_estimators=self.trees, min_samples_leaf=2, random_state=self.seed,
                                              n_jobs=1).fit(np.array(self._x[:size]), np.array(self._y[:size]))
            self._fitted_on = size
        return self._model.predict(self.features(archs))

    def reference(self) -> tuple[float, float]:
        return self.base.reference()


__all__ = ["AccuracyEstimator", "ProxyEstimator", "SupernetEstimator", "PredictorEstimator",
           "make_estimator", "PROXIES", "DEFAULT_PROXY", "KINDS",
           "naswot_kernel", "naswot_score", "synflow", "proxy_resolution"]
