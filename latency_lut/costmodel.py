"""An op-aware latency cost model fitted to whole-model timings.

Why: a per-layer roofline with three constants fitted to four presets put the default phone table at
``0.43 ms + MACs / 1.24 TMAC/s`` and missed 38 published iPhone 12 latencies of other families by 35%
on average: dense CNNs too slow, depthwise nets too fast, attention hybrids too slow. What a model
costs depends on which ops carry its work, so the features here separate them.

Featurising: the module runs once (batch 1, on the ``meta`` device when its parameters are there, so
nothing is computed) under a :class:`~torch.utils._python_dispatch.TorchDispatchMode` that sees every
aten op. Each op that depends on the input is sorted into one of :data:`FEATURES`:

* ``dense_gmacs`` / ``depthwise_gmacs``: convolutions with one group / more than one group.
* ``linear_gmacs``: matrix products with a weight (``linear``, ``addmm``, one activation operand).
* ``attention_gmacs``: matrix products of two activations (query-key, attention-value).
* ``weight_melem``: weight elements the convolutions and products read (a big model streams its
  weights from memory on every inference).
* ``norm_melem``: softmax, normalisations and reductions, elements read and written.
* ``elementwise_melem``: activations, arithmetic, pooling, elements read and written.
* ``sigmoid_melem``: outputs of the sigmoid family (sigmoid, SiLU / swish, hard-sigmoid, hard-swish),
  counted even where they fuse into a convolution and on top of their element-wise count. Mobile
  accelerators run them poorly (the MobileViTv2 paper leaves its hard-swish models untimed on the phone
  for that reason), and the published timings agree: without this feature a fit predicts the published
  SiLU networks too fast held out (on 55 points: MobileViTv2 -28%, EfficientNet -14% mean signed; on 51
  points without ``hires_melem``, about 2x too fast), with it -13% and +3%.
* ``movement_melem``: transposes, permutes, copies and concatenations, elements read and written. A
  transpose undone later by its inverse, with only per-position ops between (products with a weight,
  layer normalisation over the last axis, activations, a scale or bias per channel), is not counted,
  nor is its inverse: a compiler runs those ops in the first layout (a linear over the channels of a
  channels-last tensor is a 1x1 convolution) and moves no data. ConvNeXt's blocks are such pairs
  (11.9 M elements at 224 px); priced as copies, a fit without ConvNeXt predicts it 65% too slow.
* ``hires_melem``: elements of images at least :data:`WIDE_PX` (112) pixels wide that ops read or
  write, counted on top of their class: the stride-2 stage, where MobileNetV2, MNASNet and EfficientNet
  keep 96-channel expansions (1.2 M elements, 2.4 MB at fp16) that no on-chip buffer holds, so each is
  written to memory and read back. An image is a tensor reached from the input through ops that keep its
  width axis (a transpose moves it); attention maps and unfolded token maps are not images, however long
  their last axis. Without it the fit cannot tell MobileNet and MNASNet (-24% and -25% held out) from
  MobileOne, whose deployed form is the same depthwise-pointwise stack but which leaves 112 px after its
  stem.
* ``ops``: every op counted above (a per-op dispatch cost).

What a compiler removes is left out, as Core ML and ONNX Runtime do: ops on parameters and constants
only (folded), views other than transposes (metadata only), BatchNorm, activations and per-channel
scale / bias directly after a convolution (fused into it), the pieces of a concatenation along the
channels that convolutions write (each writes its slice of the result in place; a concatenation of
convolution outputs alone moves nothing and what follows fuses as after a convolution; any other piece,
such as the untouched half of a ShuffleNetV2 unit, is copied in) and a channel shuffle (a view splitting
the channels into groups, the transpose of the two, a view back: a permutation of channels that folds
into the weights of the convolutions reading it). The last two rules came with MixNet and ShuffleNetV2:
with every concatenation priced as a copy MixNet is predicted +242% held out, with the shuffles +70%
ShuffleNet, and with a concatenation's convolution piece copied too (as until 2026-12-07) ShuffleNet
+28%.

The model: ``ms = fixed_ms + sum over features of coefficient * feature``, each coefficient a cost per
unit (ms per GMAC, per million elements, per op), non-negative and bounded. It is linear in its
constants, so a layer's cost is its features times the coefficients and an architecture's is the sum
of its layers plus ``fixed_ms``; the fit is bounded least squares of relative errors with a robust
(soft L1) loss, so that one odd published value does not pull the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FEATURES",
    "CostModel",
    "arch_features",
    "block_features",
    "layer_features",
    "fit_cost_model",
    "group_mean_signed_pct",
    "leave_group_out",
    "module_features",
    "rank_metrics",
    "select_features",
]

#: Feature names, in column order.
FEATURES = (
    "dense_gmacs",
    "depthwise_gmacs",
    "linear_gmacs",
    "attention_gmacs",
    "weight_melem",
    "norm_melem",
    "elementwise_melem",
    "sigmoid_melem",
    "movement_melem",
    "hires_melem",
    "ops",
)
#: Unit of each coefficient (cost per unit of its feature).
UNITS = {
    "dense_gmacs": "ms/GMAC",
    "depthwise_gmacs": "ms/GMAC",
    "linear_gmacs": "ms/GMAC",
    "attention_gmacs": "ms/GMAC",
    "weight_melem": "ms/Melem",
    "norm_melem": "ms/Melem",
    "elementwise_melem": "ms/Melem",
    "sigmoid_melem": "ms/Melem",
    "movement_melem": "ms/Melem",
    "hires_melem": "ms/Melem",
    "ops": "ms/op",
    "fixed_ms": "ms",
}
_COLUMN = {name: i for i, name in enumerate(FEATURES)}
#: Width (pixels) from which the elements of an image an op reads or writes also count as ``hires_melem``.
WIDE_PX = 112


# ---- featurising -------------------------------------------------------------------------------


@functools.cache
def _op_tables() -> dict[str, frozenset]:
    import torch

    aten = torch.ops.aten

    def ops(*names: str) -> frozenset:
        found = []
        for name in names:
            packet, _, overload = name.partition(".")
            op = getattr(aten, packet, None)
            if op is not None and hasattr(op, overload or "default"):
                found.append(getattr(op, overload or "default"))
        return frozenset(found)

    return {
        "conv": ops("conv2d.default", "convolution.default", "conv1d.default", "_convolution.default"),
        "linear": ops("linear.default", "addmm.default"),
        "matmul": ops("mm.default", "bmm.default", "matmul.default", "baddbmm.default"),
        "sdpa": ops("scaled_dot_product_attention.default"),
        "conv_epilogue": ops("batch_norm.default", "_native_batch_norm_legit_no_training.default", "native_batch_norm.default"),
        "sigmoid_family": ops("silu.default", "sigmoid.default", "hardswish.default", "hardsigmoid.default"),
        "activation": ops(
            "gelu.default",
            "relu.default",
            "relu6.default",
            "silu.default",
            "sigmoid.default",
            "hardswish.default",
            "hardsigmoid.default",
            "hardtanh.default",
            "tanh.default",
            "leaky_relu.default",
        ),
        "per_channel": ops("mul.Tensor", "add.Tensor", "sub.Tensor", "div.Tensor"),
        "norm": ops(
            "softmax.int",
            "_softmax.default",
            "log_softmax.int",
            "layer_norm.default",
            "native_layer_norm.default",
            "group_norm.default",
            "native_group_norm.default",
            "batch_norm.default",
            "_native_batch_norm_legit_no_training.default",
            "native_batch_norm.default",
            "mean.dim",
            "sum.dim_IntList",
            "var.correction",
            "var_mean.correction",
            "std.correction",
            "amax.default",
            "norm.ScalarOpt_dim",
            "linalg_vector_norm.default",
        ),
        "movement": ops(
            "transpose.int",
            "permute.default",
            "t.default",
            "clone.default",
            "contiguous.default",
            "cat.default",
            "stack.default",
            "_to_copy.default",
            "copy.default",
            "constant_pad_nd.default",
            "pixel_shuffle.default",
            "pixel_unshuffle.default",
            "roll.default",
            "repeat.default",
            "index_select.default",
            "gather.default",
            "index.Tensor",
        ),
        "movers": ops("transpose.int", "permute.default", "t.default"),  # views that a device must copy
        "channel_permutation": ops("channel_shuffle.default", "native_channel_shuffle.default"),
    }


@functools.cache
def _counter_class():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    t = _op_tables()

    class OpCounter(TorchDispatchMode):
        """Sorts every input-dependent aten op into FEATURES, per block (``self.block`` is the current one)."""

        def __init__(self, inputs: Sequence[torch.Tensor]):
            super().__init__()
            self.keep: list[torch.Tensor] = list(inputs)  # held, so that no id is reused while counting
            self.act = {id(x) for x in inputs}  # tensors derived from the input
            self.conv_out: set[int] = set()  # conv outputs: a BN, activation, scale or bias on them fuses
            self.width_axis = {id(x): 3 for x in inputs if x.dim() == 4}  # image tensors: id -> the axis of their width
            self.channel_split: set[int] = set()  # views of an NCHW tensor with its channel axis split in two (1 and 2)
            # tensors in a permuted layout reached from a transpose only through per-position ops:
            # id -> (the permutation, the positions it left (all axes but the last), the block and the features
            # the transpose added there)
            self.permuted: dict[int, tuple[tuple[int, ...], Any, Any, dict[str, float]]] = {}
            # records of transposes already cancelled (a second inverse moves data); a record stays in `permuted`
            # while counting, so its id is not reused, and tensors that inherited it share it (the same transpose)
            self.spent: set[int] = set()
            # convolution outputs already written in place into a concatenation (a second one copies them)
            self.placed: set[int] = set()
            self.block: Any = 0
            self.rows: dict[Any, np.ndarray] = {}

        def _mark(self, tensors: Iterable[torch.Tensor], conv: bool) -> None:
            for x in tensors:
                self.keep.append(x)
                self.act.add(id(x))
                if conv:
                    self.conv_out.add(id(x))

        def _width(self, x: torch.Tensor) -> int:
            """An image tensor's width in pixels (0 for a tensor that is not an image)."""
            axis = self.width_axis.get(id(x))
            return 0 if axis is None else x.shape[axis]

        def _add(self, name: str, value: float) -> None:
            row = self.rows.setdefault(self.block, np.zeros(len(FEATURES)))
            row[_COLUMN[name]] += value

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            ins = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)]
            act_in = [x for x in ins if id(x) in self.act]
            if not act_in:  # parameters and constants only: folded when the model is converted
                return out
            outs = [x for x in tree_flatten(out)[0] if isinstance(x, torch.Tensor)]
            a = act_in[0]
            perm = _permutation(func, args) if func in t["movers"] else None
            for x in outs if func.is_view else outs[:1]:  # every piece of a split or chunk; one result otherwise
                axis = _width_axis(func, args, perm, a, len(act_in), x, self.width_axis.get(id(a)))
                if axis is not None:
                    self.width_axis[id(x)] = axis
            if func.is_view and perm is None:  # reshape, flatten, expand, slices: metadata only
                self._mark(outs, conv=False)
                for x in outs:
                    if _splits_channels(a, x, self.width_axis.get(id(a))):
                        self.channel_split.add(id(x))
                    if id(a) in self.permuted and x.shape[-1:] == a.shape[-1:]:
                        self.permuted[id(x)] = self.permuted[id(a)]
                return out
            if func in t["channel_permutation"]:  # a native channel shuffle: folded into weights, as below
                self._mark(outs, conv=False)
                return out
            if perm is not None and id(a) in self.channel_split and perm[:3] == (0, 2, 1) and perm[3:] == (3, 4):
                # a channel shuffle: a permutation of the channels, which a compiler folds into the weights of the
                # convolutions that read the result (their input channels reordered), so nothing moves
                self._mark(outs, conv=False)
                self.channel_split.add(id(outs[0]))
                return out
            if perm is not None:
                undone = self.permuted.get(id(a))
                if (
                    undone is not None
                    and id(undone) not in self.spent
                    and a.shape[:-1] == undone[1]  # the same positions (views between may only have round-tripped)
                    and all(undone[0][p] == i for i, p in enumerate(perm))
                ):
                    # the inverse of an earlier transpose with only per-position ops between: a compiler runs those
                    # ops in the original layout (a linear over the channels of a channels-last tensor is a 1x1
                    # convolution) and neither transpose moves data
                    self.spent.add(id(undone))
                    *_, block, added = undone
                    row = self.rows[block]
                    for name, value in added.items():
                        row[_COLUMN[name]] -= value
                    self._mark(outs, conv=False)
                    return out
            inherit = self.permuted.get(id(a)) if len(act_in) == 1 and _per_position(func, args, a) else None
            if func in t["sigmoid_family"]:  # priced whether or not it fuses (see the module docstring)
                self._add("sigmoid_melem", sum(x.numel() for x in outs) / 1e6)
            if (
                len(act_in) == 1
                and id(a) in self.conv_out
                and (
                    func in t["conv_epilogue"]
                    or func in t["activation"]
                    or (func in t["per_channel"] and all(x is a or x.numel() in (1, a.shape[1]) for x in ins))
                )
            ):
                self._mark(outs[:1], conv=True)
                return out
            pieces = _concat_pieces(func, args, self.conv_out, self.placed)
            if pieces is not None:
                in_place, copied = pieces
                self.placed |= in_place
                if not copied:  # every piece written in place by its convolution: nothing moves
                    self._mark(outs[:1], conv=True)
                    return out
            self._mark(outs, conv=func in t["conv"])
            # what the op reads and what it writes; a concatenation only reads and writes the pieces it copies in
            read, written = (copied, copied) if pieces is not None else (act_in, outs)
            elements = (sum(x.numel() for x in read) + sum(x.numel() for x in written)) / 1e6
            added = {"ops": 1.0}  # this op's features
            weights = [x for x in ins if id(x) not in self.act]
            if func in t["conv"]:
                w = args[1]
                groups = args[0].shape[1] // max(w.shape[1], 1)  # input channels per weight channel
                macs = outs[0].numel() * int(np.prod(w.shape[1:]))
                added["depthwise_gmacs" if groups > 1 else "dense_gmacs"] = macs / 1e9
                added["weight_melem"] = w.numel() / 1e6
            elif func in t["linear"] or func in t["matmul"]:
                k = args[1].shape[-1] if func.name() in ("aten::addmm", "aten::baddbmm") else args[0].shape[-1]
                macs = outs[0].numel() * int(k)
                if len(act_in) >= 2:
                    added["attention_gmacs"] = macs / 1e9
                else:
                    added["linear_gmacs"] = macs / 1e9
                    added["weight_melem"] = sum(x.numel() for x in weights if x.dim() >= 2) / 1e6
            elif func in t["sdpa"]:
                q, k = args[0], args[1]
                scores = q.numel() // q.shape[-1] * k.shape[-2]
                added["attention_gmacs"] = 2 * scores * q.shape[-1] / 1e9
                added["norm_melem"] = 2 * scores / 1e6
            elif func in t["norm"]:
                added["norm_melem"] = elements
            elif func in t["movement"]:
                added["movement_melem"] = elements
            else:
                added["elementwise_melem"] = elements
            images = [*read, *(written if pieces is not None else outs[:1])]
            wide = sum(x.numel() for x in images if self._width(x) >= WIDE_PX) / 1e6
            if wide:
                added["hires_melem"] = wide
            for name, value in added.items():
                self._add(name, value)
            if perm is not None:
                self.permuted[id(outs[0])] = (perm, outs[0].shape[:-1], self.block, added)
            elif inherit is not None:
                self.permuted[id(outs[0])] = inherit
            return out

    return OpCounter


def _width_axis(func, args, perm: tuple[int, ...] | None, a, n_act: int, out, axis: int | None) -> int | None:
    """Which axis of `out` is the image's width, given that of `a`, the op's first activation input (None: not an
    image tensor). An image keeps its width axis through convolutions, normalisation, pooling, element-wise ops,
    concatenation, per-position products, slices and views that leave the axes from the width on alone (splits
    and chunks along the channels among them); a transpose moves it; a product that contracts it, attention,
    another change of rank or another view ends it (a token map folded back into an image is not followed: that
    happens at low resolution in the models here)."""
    if axis is None or out is None:
        return None
    if perm is not None:
        return perm.index(axis)
    name = func.name().partition(".")[0]
    if func.is_view and name in ("aten::slice", "aten::narrow", "aten::split", "aten::split_with_sizes"):
        return axis if out.dim() == a.dim() else None  # the same axes, one of them narrowed or strided
    if func.is_view and name == "aten::select":  # one axis dropped: the width's, or one before it
        dim = args[1] % a.dim()
        return None if dim == axis else axis - (dim < axis)
    if func.is_view:
        tail = a.dim() - axis
        return out.dim() - tail if out.dim() >= tail and tuple(out.shape[-tail:]) == tuple(a.shape[-tail:]) else None
    t = _op_tables()
    if out.dim() != a.dim() or func in t["sdpa"] or (n_act >= 2 and func in t["matmul"]):
        return None
    if (func in t["linear"] or func in t["matmul"]) and axis == a.dim() - 1:
        return None
    return axis


def _splits_channels(a, out, width_axis: int | None) -> bool:
    """Whether a view takes an NCHW image (its width the last axis) to (N, groups, channels per group, H, W)."""
    return width_axis == 3 and a.dim() == 4 and out.dim() == 5 and out.shape[0] == a.shape[0] and out.shape[-2:] == a.shape[-2:]


def _concat_pieces(func, args, conv_out: set[int], placed: set[int]) -> tuple[set[int], list] | None:
    """For a concatenation along NCHW channels (axis 1): the ids of the pieces their convolutions write in place, and
    the pieces copied in (read and written once); None for any other op. A compiler has a convolution write its slice
    of the result directly, so such a piece moves nothing; any other piece (the untouched half of a ShuffleNetV2
    unit, a constant, a convolution output already placed in another concatenation or twice in this one) is copied."""
    if func.name() != "aten::cat" or len(args[0]) < 2:
        return None
    tensors, dim = args[0], args[1] if len(args) > 1 else 0
    if not all(x.dim() == 4 for x in tensors) or dim % 4 != 1:
        return None
    in_place: set[int] = set()
    copied = []
    for x in tensors:
        if id(x) in conv_out and id(x) not in placed and id(x) not in in_place:
            in_place.add(id(x))
        else:
            copied.append(x)
    return in_place, copied


def _permutation(func, args) -> tuple[int, ...]:
    """The axis order a transpose, permute or ``t`` gives its input (output axis i is input axis perm[i])."""
    rank, name = args[0].dim(), func.name().partition(".")[0]
    if name == "aten::permute":
        return tuple(d % rank for d in args[1])
    i, j = (args[1] % rank, args[2] % rank) if name == "aten::transpose" else (0, 1)
    perm = list(range(rank))
    perm[i], perm[j] = perm[j], perm[i]
    return tuple(perm)


def _per_position(func, args, a) -> bool:
    """Whether an op on `a` (its one activation input) acts on each position along the last axis alone, so that a
    compiler can run it in the layout before a transpose: a product with a weight, a layer normalisation over the
    last axis, an activation, a scale or bias per channel."""
    t = _op_tables()
    if func in t["linear"]:
        return func.name() == "aten::linear"
    if func.name() in ("aten::layer_norm", "aten::native_layer_norm"):
        return len(args[1]) == 1
    if func in t["activation"]:
        return True
    if func in t["per_channel"]:  # the other operand a number, or one value per channel of the last axis
        other = [x for x in args[:2] if x is not a]
        return all(not hasattr(x, "numel") or x.numel() == 1 or x.numel() == x.shape[-1] == a.shape[-1] for x in other)
    return False


def _prepared(module):
    """Eval mode with dropout and in-place activations neutralised: a dropout op would be counted, and
    an in-place activation escapes the conv-fusion rule (it writes into the conv's output)."""
    import torch

    module = module.eval()
    for name, child in list(module.named_modules()):
        if isinstance(child, torch.nn.Dropout | torch.nn.Dropout2d | torch.nn.Dropout1d):
            parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            setattr(parent, name.rpartition(".")[2], torch.nn.Identity())
        if hasattr(child, "inplace") and isinstance(child.inplace, bool):
            child.inplace = False
    return module


def block_features(module, example_input, blocks: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Per-block features of any ``nn.Module``: (block names, an (n_blocks, len(FEATURES)) array).

    `blocks` names the submodules to split at (default: the module's direct children); ops outside
    them (a functional flatten or pooling between children) go to a block named ``"<glue>"``. The
    module runs once on `example_input` (a tensor, or a tuple of them) in inference mode.
    """
    import torch

    module = _prepared(module)
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    names = list(blocks) if blocks is not None else [name for name, _ in module.named_children()]
    counter = _counter_class()(inputs)
    counter.block = "<glue>"
    handles = []
    for name in names:
        sub = module.get_submodule(name)
        previous: list[Any] = []

        def enter(_mod, _args, name=name, previous=previous):
            previous.append(counter.block)
            counter.block = name

        def leave(_mod, _args, _out, previous=previous):
            counter.block = previous.pop()

        handles.append(sub.register_forward_pre_hook(enter))
        handles.append(sub.register_forward_hook(leave))
    try:
        with torch.inference_mode(), counter:
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    order = names + (["<glue>"] if "<glue>" in counter.rows else [])  # a block without counted ops: a zero row
    zero = np.zeros(len(FEATURES))
    return order, np.array([counter.rows.get(n, zero) for n in order], dtype=float).reshape(-1, len(FEATURES))


def module_features(module, example_input) -> np.ndarray:
    """The features of a whole module (one row): the sum of its ops, whatever its structure."""
    return block_features(module, example_input, blocks=())[1].sum(axis=0)


@functools.cache
def layer_features(spec) -> np.ndarray:
    """Features of one :class:`~search_spaces.LayerSpec` (cached per key): its module built and run on the
    ``meta`` device, so nothing is computed (on the CPU should an op lack a meta kernel)."""
    import torch

    import supernet

    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                module = supernet.build_layer(spec)
                x = torch.zeros(1, spec.cin, spec.grid, spec.grid)
            row = module_features(module, x)
            row.flags.writeable = False
            return row
        except (NotImplementedError, RuntimeError):
            if device == "cpu":
                raise
    raise AssertionError("unreachable")


def specs_features(specs: Sequence) -> np.ndarray:
    """An (n, len(FEATURES)) array, one row per layer spec."""
    return np.array([layer_features(spec) for spec in specs], dtype=float).reshape(-1, len(FEATURES))


def arch_features(arch) -> np.ndarray:
    """Whole-model features of an architecture: the sum of its layers' (one row)."""
    return specs_features(arch.layers()).sum(axis=0)


# ---- the model ---------------------------------------------------------------------------------


#: Lower bounds of the coefficients: no op class computes faster than the device's peak (for the
#: iPhone 12's A14 Neural Engine, 11 TOPS = 5.5 TMAC/s at fp16: 0.18 ms per GMAC). Without them a fit
#: on 224-px models, whose MACs grow with their weights, can put all the cost on the weights and make
#: compute (and with it the input resolution) free.
LOWER_PEAK_TMACS = 5.5
#: Upper bounds of the coefficients (cost per unit): generous, so that only nonsense is excluded.
UPPER = {
    "dense_gmacs": 20.0,  # 20 ms/GMAC = 0.05 TMAC/s
    "depthwise_gmacs": 200.0,
    "linear_gmacs": 20.0,
    "attention_gmacs": 50.0,
    "weight_melem": 1.0,  # 1 ms per million weights = 2 GB/s at fp16
    "norm_melem": 1.0,
    "elementwise_melem": 1.0,
    "sigmoid_melem": 1.0,
    "movement_melem": 1.0,
    "hires_melem": 1.0,
    "ops": 0.05,  # 50 us per op
    "fixed_ms": 5.0,
}


@dataclass(frozen=True)
class CostModel:
    """Fitted coefficients: ``ms = fixed_ms + features @ coefficients`` (units in :data:`UNITS`)."""

    coefficients: dict[str, float]
    fixed_ms: float
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def vector(self) -> np.ndarray:
        return np.array([self.coefficients[name] for name in FEATURES], dtype=float)

    def layer_ms(self, feats: np.ndarray) -> np.ndarray:
        """Cost of each row of a (n, len(FEATURES)) array, without the fixed per-inference cost."""
        return np.asarray(feats, dtype=float).reshape(-1, len(FEATURES)) @ self.vector()

    def predict(self, model_feats: np.ndarray) -> np.ndarray:
        """End-to-end ms of each row of a (n_models, len(FEATURES)) array of whole-model features."""
        return self.layer_ms(model_feats) + self.fixed_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": "ms = fixed_ms + sum(coefficient * feature)",
            "coefficients": {name: round(self.coefficients[name], 9) for name in FEATURES},
            "fixed_ms": round(self.fixed_ms, 6),
            "units": UNITS,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CostModel:
        return cls({name: float(data["coefficients"][name]) for name in FEATURES}, float(data["fixed_ms"]))


def fit_cost_model(
    model_feats: np.ndarray,
    measured_ms: Sequence[float],
    *,
    use: Sequence[str] = FEATURES,
    fixed: bool = True,
    loss: str = "soft_l1",
    f_scale: float = 0.1,
    ridge: float = 0.0,
    peak_tmacs: float | None = LOWER_PEAK_TMACS,
    tied: Mapping[str, str] | None = None,
) -> CostModel:
    """Fit the coefficients of `use` (the others pinned at their lower bound) and ``fixed_ms`` to
    whole-model timings.

    Residuals are relative (``predicted / measured - 1``), so a 1 ms and a 7 ms model weigh alike;
    `loss` is scipy's robust loss with `f_scale` the relative error where it turns linear (0.1: one
    outlier of 50% weighs like 5 points of 10%, not 25). `ridge` adds a penalty pulling each
    coefficient's share of the mean latency to zero, for fits with few points. `peak_tmacs` bounds every
    MAC coefficient below by ``1 / peak`` (None: no bound). `tied` maps a feature to another whose
    coefficient it shares (``{"attention_gmacs": "linear_gmacs"}``: a product of two activations costs
    what a product with a weight does), for a feature that too few models exercise to learn alone. A
    tied feature is fitted exactly when its target is (whether `use` names it does not matter), and
    both must have the same unit.
    """
    from scipy.optimize import least_squares

    x = np.asarray(model_feats, dtype=float).reshape(-1, len(FEATURES))
    y = np.asarray(measured_ms, dtype=float)
    if len(x) != len(y) or not len(y):
        raise ValueError(f"{len(x)} feature rows for {len(y)} timings")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("timings must be positive and finite")
    tied = dict(tied or {})
    unknown = [name for name in [*use, *tied, *tied.values()] if name not in _COLUMN]
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r} (known: {', '.join(FEATURES)})")
    chained = [name for name, target in tied.items() if target in tied or target == name]
    if chained:
        raise ValueError(f"feature {chained[0]!r} is tied to a feature that is tied itself")
    mismatched = [name for name, target in tied.items() if UNITS[name] != UNITS[target]]
    if mismatched:
        name = mismatched[0]
        raise ValueError(f"feature {name!r} ({UNITS[name]}) cannot be tied to {tied[name]!r} ({UNITS[tied[name]]})")
    if tied:  # a tied feature's amounts count as its target's; its coefficient is the target's
        x = x.copy()
        for name, target in tied.items():
            x[:, _COLUMN[target]] += x[:, _COLUMN[name]]
            x[:, _COLUMN[name]] = 0.0
    floor = {name: (1.0 / peak_tmacs if peak_tmacs and name.endswith("_gmacs") else 0.0) for name in FEATURES}
    # Unused features, and features no model of the fit exercises (nothing to learn them from): at their lower bound.
    pinned = {name: floor[name] for name in FEATURES if name not in use or not np.any(x[:, _COLUMN[name]])}
    base = x @ np.array([pinned.get(name, 0.0) for name in FEATURES])  # ms the pinned coefficients account for
    free = [name for name in FEATURES if name not in pinned] + (["fixed_ms"] if fixed else [])
    design = np.stack([x[:, _COLUMN[n]] if n != "fixed_ms" else np.ones(len(y)) for n in free], axis=1)
    # Scale each column to a mean contribution of 1 ms at coefficient 1, so the solver sees one scale.
    mean = design.mean(axis=0)
    scale = np.where(mean > 0, np.mean(y) / np.maximum(mean, 1e-30), 1.0)
    a = design * scale
    lower = np.array([floor.get(n, 0.0) for n in free]) / scale
    upper = np.maximum(np.array([UPPER[n] for n in free]) / scale, lower * 1.0001 + 1e-12)

    def residuals(c: np.ndarray) -> np.ndarray:
        r = (base + a @ c) / y - 1.0
        return np.concatenate([r, np.sqrt(ridge) * c]) if ridge else r

    best = None
    for start in (0.1, 0.5):
        c0 = np.clip(np.full(a.shape[1], start / a.shape[1]), lower + (upper - lower) * 1e-3, upper * 0.5)
        res = least_squares(residuals, c0, bounds=(lower, upper), loss=loss, f_scale=f_scale, x_scale="jac")
        if best is None or res.cost < best.cost:
            best = res
    fitted = dict(zip(free, (float(v) for v in best.x * scale)))
    coefficients = {name: fitted.get(name, pinned.get(name, 0.0)) for name in FEATURES}
    coefficients.update({name: coefficients[target] for name, target in tied.items()})
    details = {"points": len(y), "loss": loss, "f_scale": f_scale, "free": free, "peak_tmacs": peak_tmacs}
    if tied:
        details["tied"] = tied
    return CostModel(coefficients, fitted.get("fixed_ms", 0.0), details)


def rank_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Mean absolute % error, share within +-10% and +-20%, mean signed error, Kendall tau."""
    from scipy.stats import kendalltau

    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    err = 100 * (p / m - 1)
    tau = float(kendalltau(p, m).statistic) if len(m) > 1 else float("nan")
    return {
        "mape_pct": round(float(np.mean(np.abs(err))), 2),
        "within_10_pct": round(float(np.mean(np.abs(err) <= 10 + 1e-9) * 100), 1),
        "within_20_pct": round(float(np.mean(np.abs(err) <= 20 + 1e-9) * 100), 1),
        "mean_signed_pct": round(float(np.mean(err)), 2),
        "kendall_tau": round(tau, 3),
    }


def leave_group_out(
    model_feats: np.ndarray, measured_ms: Sequence[float], groups: Sequence[str], **fit_kwargs: Any
) -> dict[str, Any]:
    """Each group predicted by a fit on the others (leave-one-family-out): per-point predictions,
    overall metrics and each group's mean signed error."""
    x = np.asarray(model_feats, dtype=float)
    y = np.asarray(measured_ms, dtype=float)
    g = np.asarray(list(groups))
    predicted = np.empty_like(y)
    for group in dict.fromkeys(g):
        held = g == group
        predicted[held] = fit_cost_model(x[~held], y[~held], **fit_kwargs).predict(x[held])
    return {
        "predicted_ms": predicted,
        "error_pct": 100 * (predicted / y - 1),
        "metrics": rank_metrics(predicted, y),
        "group_mean_signed_pct": group_mean_signed_pct(predicted, y, g),
    }


def group_mean_signed_pct(predicted: Sequence[float], measured: Sequence[float], groups: Sequence[str]) -> dict[str, float]:
    """Each group's mean signed error (%), groups in order of first appearance."""
    err = 100 * (np.asarray(predicted, dtype=float) / np.asarray(measured, dtype=float) - 1)
    g = np.asarray(list(groups))
    return {str(k): round(float(err[g == k].mean()), 2) for k in dict.fromkeys(g)}


def select_features(
    model_feats: np.ndarray,
    measured_ms: Sequence[float],
    groups: Sequence[str],
    *,
    max_group_error_pct: float = 20.0,
    candidates: Iterable[Sequence[str]] | None = None,
    **fit_kwargs: Any,
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """The feature subset to fit, chosen by leave-one-group-out: the lowest mean absolute error among
    subsets whose every group's mean signed error is within `max_group_error_pct` (if none is, the
    lowest worst-group error). Why a subset: with few points, a coefficient that few models exercise
    is fitted to those few and can extrapolate badly. The cost: the choice sees the errors it is judged
    by, so the chosen subset's figures are optimistic (on the published phone set, 10.3% held-out error
    as reported, 19.4% with the choice held out too), and the phone table fits every feature instead.

    Returns the subset and every candidate's record (features, metrics, worst group), best first.
    """
    import itertools

    pool = (
        [tuple(c) for c in candidates]
        if candidates is not None
        else [c for k in range(1, len(FEATURES) + 1) for c in itertools.combinations(FEATURES, k)]
    )
    seen: dict[tuple[float, ...], dict[str, Any]] = {}
    for use in pool:
        result = leave_group_out(model_feats, measured_ms, groups, use=use, **fit_kwargs)
        worst_group, worst = max(result["group_mean_signed_pct"].items(), key=lambda kv: abs(kv[1]))
        record = {"features": list(use), **result["metrics"], "worst_group": worst_group, "worst_group_pct": worst}
        key = tuple(np.round(result["predicted_ms"], 9))  # a feature some model lacks changes nothing: keep the smallest
        if key not in seen or len(use) < len(seen[key]["features"]):
            seen[key] = record
    records = list(seen.values())
    ok = [r for r in records if abs(r["worst_group_pct"]) <= max_group_error_pct]

    def rank(r: dict[str, Any]) -> tuple[bool, float]:
        return abs(r["worst_group_pct"]) > max_group_error_pct, r["mape_pct"] if ok else abs(r["worst_group_pct"])

    records.sort(key=rank)
    return tuple(records[0]["features"]), records
