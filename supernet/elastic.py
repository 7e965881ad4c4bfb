"""The elastic supernet: every slot holds its largest layer; a subnet uses leading slices of it.

Design (after Once-for-All's elastic layers, but with no second copy of any layer's math): each slot
of the space holds one full-size instance of the plain layer class per variant it may hold (the FFN;
or one module per allowed mixer). A subnet's layer takes the leading slice of each of those tensors
(:meth:`SuperNet.slices`, the one slicing path), and the three ways of using a subnet all go through it:

- :meth:`SuperNet.view` (and ``forward`` after ``set_active``) runs the plain class's own ``forward``
  through ``torch.func.functional_call`` on a weightless (meta-device) skeleton of the active size,
  with the slices taken anew each call, so gradients reach the full tensors (training);
- :meth:`SuperNet.extract` copies the slices into a fresh standalone :class:`SubNet` (evaluation,
  export);
- :meth:`SuperNet.shared_layers` builds plain layer modules whose tensors *are* the slices (shared
  storage, no copy, gradients of subnet size): what training-free proxies run thousands of times.

So the active supernet and the extracted model run literally the same code on the same numbers.
Skeletons belong to each supernet instance, one per slot and layer, so two supernets in one process
(a proxy's network in train mode, a trained supernet in eval mode) never share mutable state.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn
from torch.func import functional_call

from search_spaces import Arch, LayerSpec, Space, SpaceError, load

from .layers import build_layer
from .subnet import SubNet, drop_path_rates


def leading_slice(full: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """The leading `shape` block of `full` (a view, no copy)."""
    if full.shape == shape:
        return full
    if full.dim() != len(shape) or any(s > f for s, f in zip(shape, full.shape)):
        raise RuntimeError(f"cannot take a {tuple(shape)} slice of a {tuple(full.shape)} tensor")
    return full[tuple(slice(0, s) for s in shape)]


class _Layer:
    """One slot's layer of one size: the weightless skeleton module, the shape of each of its tensors,
    and where the full tensor behind each sits (the slot module and attribute, looked up at each use so
    that ``.to()`` and ``load_state_dict`` are seen)."""

    __slots__ = ("skeleton", "tensors")

    def __init__(self, spec: LayerSpec, full: nn.Module, drop_rate: float):
        with torch.device("meta"):
            self.skeleton = build_layer(spec)
        if hasattr(self.skeleton, "drop_path"):
            self.skeleton.drop_path = drop_rate
        named = list(self.skeleton.named_parameters()) + list(self.skeleton.named_buffers())
        self.tensors = tuple(
            (name, full.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2], t.shape) for name, t in named
        )

    def slices(self) -> dict[str, torch.Tensor]:
        return {name: leading_slice(getattr(owner, attr), shape) for name, owner, attr, shape in self.tensors}


class SubnetView:
    """A subnet of a supernet, run on the supernet's live weights (stateless: it changes nothing of the
    supernet, so several views can be used one after another, e.g. the subnets of a sandwich step).
    It runs in the supernet's train/eval mode; gradients reach the supernet's full tensors."""

    def __init__(self, net: SuperNet, arch: Arch):
        self.net, self.arch = net, arch
        self.layers = tuple(net._layer(spec) for spec in arch.layers())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        training = self.net.training
        for layer in self.layers:
            skeleton = layer.skeleton
            if skeleton.training != training:
                skeleton.train(training)
            x = functional_call(skeleton, layer.slices(), (x,))
        return x


class SuperNet(nn.Module):
    """Elastic EfficientFormerV2-style supernet over a search space.

    ``set_active(arch)`` selects a subnet; ``forward`` then runs exactly it; ``view(arch)`` runs a subnet
    without selecting it; ``extract(arch)`` returns it as a standalone :class:`SubNet` holding copies
    of the shared weights.
    """

    #: shared layer modules kept (see :meth:`shared_layers`); a proxy search reuses most of them
    SHARED_LAYERS_KEPT = 8192

    def __init__(self, space: Space):
        super().__init__()
        self.space = space
        self.slots = nn.ModuleDict()
        for name, variants in space.slot_layers():
            self.slots[name] = nn.ModuleDict({kind: build_layer(spec) for kind, spec in variants.items()})
        self._layers: dict[tuple[str, LayerSpec], _Layer] = {}
        self._shared: OrderedDict[tuple[str, LayerSpec, bool], nn.Module] = OrderedDict()
        self._drop_rates: dict[str, float] = {}
        self.drop_path = 0.0
        self._view = self.view(space.largest())

    @property
    def active(self) -> Arch:
        return self._view.arch

    def _full_layer(self, spec: LayerSpec) -> nn.Module:
        try:
            return self.slots[spec.name][spec.kind]
        except KeyError:
            raise SpaceError(f"layer {spec.name} ({spec.kind}) has no slot in this supernet's space") from None

    def _layer(self, spec: LayerSpec) -> _Layer:
        key = (spec.name, spec)  # LayerSpec equality ignores the slot name
        layer = self._layers.get(key)
        if layer is None:
            layer = self._layers[key] = _Layer(spec, self._full_layer(spec), self._drop_rates.get(spec.name, 0.0))
        return layer

    def _check(self, arch: Arch) -> None:
        if arch.search_space is not self.space:
            self.space.check(arch)  # same choices under another reference is fine; otherwise this raises

    def slices(self, spec: LayerSpec) -> dict[str, torch.Tensor]:
        """The tensors of one layer of a subnet: leading slices (views) of its slot's full tensors."""
        return self._layer(spec).slices()

    def view(self, arch: Arch) -> SubnetView:
        """`arch` run on this supernet's weights without making it the active subnet."""
        self._check(arch)
        return SubnetView(self, arch)

    def set_active(self, arch: Arch) -> None:
        """Make ``forward`` run `arch` (which must belong to this supernet's space)."""
        self._view = self.view(arch)

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth for training: block rates rising linearly to `rate` (see drop_path_rates)."""
        self.drop_path = rate
        self._drop_rates = drop_path_rates(self.space, rate)
        for (name, _), layer in self._layers.items():
            if hasattr(layer.skeleton, "drop_path"):
                layer.skeleton.drop_path = self._drop_rates.get(name, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._view(x)

    @torch.no_grad()
    def extract(self, arch: Arch | None = None) -> SubNet:
        """A standalone module of `arch` (default: the active one) with copies of its weights."""
        arch = arch or self.active
        self._check(arch)
        model = SubNet(arch)
        if self.drop_path:
            model.set_drop_path(self.drop_path)
        model.load_state_dict(
            {f"layers.{spec.name}.{name}": t.clone() for spec in arch.layers() for name, t in self.slices(spec).items()}
        )
        model.train(self.training)
        ref = next(self.parameters())
        return model.to(device=ref.device, dtype=ref.dtype)

    def shared_layers(self, arch: Arch, *, requires_grad: bool = False) -> list[nn.Module]:
        """`arch`'s layers as plain modules whose parameters and buffers are the slices themselves: the
        supernet's numbers without a copy, and without ``functional_call`` on every call (about a fifth
        of a small forward). Parameters are leaves of their own (gradients of subnet size, with
        `requires_grad`), and in-place updates (BatchNorm statistics) reach the supernet's buffers. The
        modules are cached per slot and layer, made in the supernet's train/eval mode at the time; build
        them after any ``.to()`` or ``.double()`` of the supernet (they hold its tensors as they were)."""
        self._check(arch)
        return [self._shared_layer(spec, requires_grad) for spec in arch.layers()]

    def _shared_layer(self, spec: LayerSpec, requires_grad: bool) -> nn.Module:
        key = (spec.name, spec, requires_grad)
        module = self._shared.get(key)
        if module is not None:
            self._shared.move_to_end(key)
            return module
        layer = self._layer(spec)
        module = copy.deepcopy(layer.skeleton)  # a third of the cost of building one
        for name, piece in layer.slices().items():
            prefix, _, attr = name.rpartition(".")
            owner = module.get_submodule(prefix)
            is_parameter = isinstance(getattr(owner, attr), nn.Parameter)
            # a parameter made from a slice aliases its storage: no copy, and its own (subnet-size) gradient
            setattr(owner, attr, nn.Parameter(piece, requires_grad=requires_grad) if is_parameter else piece)
        module.train(self.training)
        self._shared[key] = module
        if len(self._shared) > self.SHARED_LAYERS_KEPT:
            self._shared.popitem(last=False)
        return module


def build(space: Space | str) -> SuperNet:
    """The elastic supernet of a space (a Space, a shipped space name or a space file path)."""
    return SuperNet(load(space) if isinstance(space, str) else space)


__all__ = ["SuperNet", "SubnetView", "build", "leading_slice"]
