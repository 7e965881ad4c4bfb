"""The elastic supernet: every slot holds its largest layer; a subnet uses leading slices of it.

Design (after Once-for-All's elastic layers, but with no second copy of any layer's math): each
slot of the space holds one full-size instance of the plain layer class per variant it may hold
(the FFN; or one module per allowed mixer). To run a subnet, each active layer's forward is the plain
class's own ``forward``, called through ``torch.func.functional_call`` on a weightless (meta-device)
skeleton of the active size, with every weight a leading slice of the full-size one. Extraction
copies those same slices into a freshly built :class:`SubNet`. So the active supernet and the
extracted model run literally the same code on the same numbers.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn
from torch.func import functional_call

from search_spaces import Arch, LayerSpec, Space, SpaceError

from .layers import build_layer
from .subnet import SubNet, drop_path_rates


@lru_cache(maxsize=4096)
def _skeleton(spec: LayerSpec) -> tuple[nn.Module, tuple[tuple[str, torch.Size], ...]]:
    """A weightless module of the spec's size and the shape of each of its tensors."""
    with torch.device("meta"):
        module = build_layer(spec)
    shapes = tuple((name, t.shape) for name, t in list(module.named_parameters()) + list(module.named_buffers()))
    return module, shapes


def _leading_slice(full: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if full.shape == shape:
        return full
    if full.dim() != len(shape) or any(s > f for s, f in zip(shape, full.shape)):
        raise RuntimeError(f"cannot take a {tuple(shape)} slice of a {tuple(full.shape)} tensor")
    return full[tuple(slice(0, s) for s in shape)]


class SuperNet(nn.Module):
    """Elastic EfficientFormerV2-style supernet over a search space.

    ``set_active(arch)`` selects a subnet; ``forward`` then runs exactly it; ``extract(arch)`` returns
    it as a standalone :class:`SubNet` holding copies of the shared weights.
    """

    def __init__(self, space: Space):
        super().__init__()
        self.space = space
        self.slots = nn.ModuleDict()
        for name, variants in space.slot_layers():
            self.slots[name] = nn.ModuleDict({kind: build_layer(spec) for kind, spec in variants.items()})
        self._active: Arch | None = None
        self._plan: list[tuple[nn.Module, tuple, float | None]] = []
        self._drop_rates: dict[str, float] = {}
        self.drop_path = 0.0
        self.set_active(space.largest())

    @property
    def active(self) -> Arch:
        return self._active

    def _full_layer(self, spec: LayerSpec) -> nn.Module:
        try:
            return self.slots[spec.name][spec.kind]
        except KeyError:
            raise SpaceError(f"layer {spec.name} ({spec.kind}) has no slot in this supernet's space") from None

    def set_active(self, arch: Arch) -> None:
        """Make ``forward`` run `arch` (which must belong to this supernet's space)."""
        if arch.search_space is not self.space:
            self.space.check(arch)  # same choices under another reference is fine; otherwise this raises
        plan = []
        for spec in arch.layers():
            skeleton, shapes = _skeleton(spec)
            full = self._full_layer(spec)
            owners = {name: (full.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2]) for name, _ in shapes}
            rate = self._drop_rates.get(spec.name, 0.0) if hasattr(skeleton, "drop_path") else None
            plan.append((skeleton, tuple((name, owners[name], shape) for name, shape in shapes), rate))
        self._active, self._plan = arch, plan

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth for training: block rates rising linearly to `rate` (see drop_path_rates)."""
        self.drop_path = rate
        self._drop_rates = drop_path_rates(self.space, rate)
        self.set_active(self._active)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for skeleton, tensors, rate in self._plan:
            # Slices are taken anew each call (autograd and in-place BN updates reach the full tensors);
            # tensors are looked up through their owning module, so .to() and load_state_dict are seen.
            sliced = {name: _leading_slice(getattr(owner, attr), shape) for name, (owner, attr), shape in tensors}
            if skeleton.training != self.training:
                skeleton.train(self.training)
            if rate is not None:  # skeletons are shared between equal layers: set this slot's rate each call
                skeleton.drop_path = rate
            x = functional_call(skeleton, sliced, (x,))
        return x

    @torch.no_grad()
    def extract(self, arch: Arch | None = None) -> SubNet:
        """A standalone module of `arch` (default: the active one) with copies of its weights."""
        arch = arch or self._active
        if arch.search_space is not self.space:
            self.space.check(arch)
        model = SubNet(arch)
        if self.drop_path:
            model.set_drop_path(self.drop_path)
        state = {}
        for spec in arch.layers():
            full = self._full_layer(spec)
            tensors = dict(full.named_parameters())
            tensors.update(full.named_buffers())
            for name, shape in _skeleton(spec)[1]:
                state[f"layers.{spec.name}.{name}"] = _leading_slice(tensors[name], shape).clone()
        model.load_state_dict(state)
        model.train(self.training)
        ref = next(self.parameters())
        return model.to(device=ref.device, dtype=ref.dtype)


def build(space: Space | str) -> SuperNet:
    """The elastic supernet of a space (a Space, a shipped space name or a space file path)."""
    from search_spaces import load

    return SuperNet(load(space) if isinstance(space, str) else space)
