"""Supernet training (sandwich rule, in-place distillation), single-architecture training, checkpoints,
and the evaluation of a subnet on a validation split (SPEC sections 4 and 6).

**Supernet step.** Each step runs the largest subnet, the smallest and ``random_subnets`` (2) random
ones on the same batch, accumulates their gradients and takes one optimizer step (the sandwich rule).
The largest learns from the labels (cross-entropy with label smoothing); the others learn from the
largest's predicted distribution, detached (KL divergence): in-place distillation. The random subnets
of a step are drawn from (seed, step), so every process of a distributed run draws the same ones.
Subnets of a space with several resolutions see the batch resized to their own.

**Distillation head.** The spaces keep EfficientFormerV2's second (distillation) classifier. Both
heads learn the same target (the labels for the largest, its predictions for the others) and
evaluation averages their logits, as EfficientFormerV2 does; with no external teacher the two heads
are a two-member ensemble over the same features.

**Optimisation.** AdamW (no weight decay on biases, normalisation, layer scales and position biases),
linear warm-up then cosine decay per step over ``epochs`` (``max_steps`` only stops early, so a run
stopped and resumed follows the schedule of the uninterrupted one), gradient-norm clipping, optional
stochastic depth (``drop_path``).

**Processes.** Under ``torchrun`` every process takes a shard of each global batch (``batch_size`` is
the global batch); gradients are accumulated locally over the sandwich's subnets and then averaged
across processes in one all-reduce (gloo on CPU, NCCL on GPU), as each subnet uses a different part of
the weights. Only rank 0 validates, writes checkpoints and prints; at every save it also checks that
all processes hold the same weights.

**Checkpoints** (``--out``, written atomically, at the end of each epoch and every ``save_every``
steps) hold plain data only, so ``torch.load(path, weights_only=True)`` reads them: ``model`` (the
state_dict), ``optimizer``, ``scheduler``, ``step``/``epoch``/``batch``, the RNG states, ``space``
(the ref ``BASE?num_classes=..&resolutions=..``, its name and the base space's YAML text), ``arch``
(single-architecture runs), ``settings``, ``data`` and ``history`` (validation top-1 per epoch).
:func:`load_checkpoint` gives the model back; :func:`evaluate_subnet` scores any architecture of the
space with the supernet's weights (BatchNorm recalibrated on training batches).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import search_spaces
import supernet
from search_spaces import Arch, Space, SpaceError

from .data import Data, Loader, load_data, seed_of
from .errors import BadInput

FORMAT = "nas-train"
VERSION = 1
DEFAULT_SPACE = "efficientformerv2"
#: Defaults for small data sets, chosen so one epoch of Fashion-MNIST takes minutes on two CPU cores.
DATA_DEFAULTS = {"fashion-mnist": {"space": "efficientformerv2-tiny", "resolution": 32},
                 "synthetic": {"space": "efficientformerv2-tiny", "resolution": 32}}
#: Settings of a run and their defaults (None: decided from the data or the space).
DEFAULTS: dict[str, Any] = {
    "data": None, "space": None, "resolution": None, "epochs": 1, "max_steps": None, "batch_size": 128, "lr": 1e-3,
    "weight_decay": 0.025, "warmup": 0.05, "label_smoothing": 0.1, "clip": 5.0, "drop_path": 0.0, "seed": 0,
    "random_subnets": 2, "arch": None, "supernet": None, "save_every": 200, "calib_batches": 8, "workers": None,
    "device": None,
}
#: Settings a resumed run may change; any other must equal the checkpoint's.
RESUME_MAY_CHANGE = ("epochs", "max_steps", "save_every", "workers", "device")


# ---- evaluation (also the API of the supernet accuracy estimator) -------------------------------
def _logits(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """One prediction from a model's output: the average of the heads when there are two."""
    return torch.stack(out).mean(0) if isinstance(out, tuple) else out


def _resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    if x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=x.shape[-1] > resolution)


def _inputs(batch: torch.Tensor | tuple | list) -> torch.Tensor:
    return batch[0] if isinstance(batch, tuple | list) else batch


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor | tuple]) -> nn.Module:
    """Reset every BatchNorm's running statistics and re-estimate them (a plain average over `batches`,
    inputs or (inputs, labels)); returns `model`, in the train/eval mode it had.

    A subnet's statistics are not stored in a supernet, whose shared buffers mix those of all subnets,
    so estimate them before evaluating it. `model` must be a plain module: ``net.extract(arch)``, not
    the supernet (that would overwrite the shared statistics).
    """
    if isinstance(model, supernet.SuperNet):
        raise TypeError("recalibrate_bn needs a plain module: pass net.extract(arch), not the supernet")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    was_training = model.training
    model.train()
    device = _device_of(model)
    try:
        for batch in batches:
            model(_inputs(batch).to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return model


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy in percent of `model` (eval mode; two heads averaged) over (inputs, labels) batches."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    correct = total = 0
    try:
        for x, y in loader:
            pred = _logits(model(x.to(device))).argmax(dim=1).cpu()
            correct += int((pred == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    if not total:
        raise BadInput("evaluate: the validation split is empty")
    return 100.0 * correct / total


def evaluate_subnet(net: supernet.SuperNet, arch: Arch, data: Data, *, batch_size: int = 256, calib_batches: int = 8,
                    limit: int | None = None, seed: int = 0) -> float:
    """Top-1 (%) on the validation split of `arch` with the supernet's weights: the subnet is extracted,
    its BatchNorm statistics re-estimated on `calib_batches` training batches (un-augmented, a fixed
    seeded draw), then it is evaluated on the first `limit` validation images (all by default)."""
    model = net.extract(arch)
    recalibrate_bn(model, calibration_batches(data, arch.resolution, batch_size, calib_batches, seed))
    val = Loader(data, "val", resolution=arch.resolution, batch_size=batch_size, train=False, limit=limit)
    return evaluate(model, val)


def calibration_batches(data: Data, resolution: int, batch_size: int = 256, batches: int = 8, seed: int = 0) -> Loader:
    """`batches` un-augmented batches of training images in a fixed seeded order, for recalibrate_bn
    (smaller batches when the training split holds fewer than `batch_size` images)."""
    batch_size = min(batch_size, len(data.train))
    return Loader(data, "train", resolution=resolution, batch_size=batch_size, train=True, augment=False,
                  seed=seed_of(seed, 3), limit=batch_size * batches)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ---- checkpoints -----------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A training checkpoint, read back (see the module docstring for what it holds)."""

    path: Path
    kind: str  # "supernet" or "subnet"
    space: Space
    arch: Arch | None
    state: dict[str, Any]

    @property
    def settings(self) -> dict[str, Any]:
        return self.state["settings"]

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state["history"]

    @property
    def resolution(self) -> int:
        return max(self.space.resolutions)

    def model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The trained module, in eval mode: a SuperNet (set_active / extract) or the SubNet of ``arch``."""
        model = supernet.SuperNet(self.space) if self.kind == "supernet" else supernet.SubNet(self.arch)
        model.load_state_dict(self.state["model"])
        return model.to(device).eval()

    def adapt(self, arch: Arch) -> Arch:
        """`arch`'s genes as an architecture of the checkpoint's space (its classes, its resolution when
        `arch`'s is not one of the space's), e.g. a search's architecture to score with this supernet."""
        return adapt_arch(arch, self.space)

    def data(self, source: str | None = None) -> Data:
        """The training run's data set (or `source`), for recalibration and validation."""
        return load_data(source or self.settings["data"], seed=self.settings["seed"])


def adapt_arch(arch: Arch, space: Space, resolution: int | None = None) -> Arch:
    """`arch`'s genes in `space` (the same stages, another number of classes or resolutions) at
    `resolution` (default: `arch`'s when `space` offers it, else the space's largest)."""
    if resolution is None:
        resolution = arch.resolution if arch.resolution in space.resolutions else max(space.resolutions)
    adapted = dataclasses.replace(arch, space=space.ref, resolution=int(resolution))
    space.check(adapted)
    return adapted


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``nas train``; BadInput (one line) when it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"no such checkpoint: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a file that is not a checkpoint
        raise BadInput(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BadInput(f"{path}: not a checkpoint written by nas train")
    if state.get("version", 0) > VERSION:
        raise BadInput(f"{path}: checkpoint version {state['version']} is newer than this nas reads ({VERSION})")
    space = _space_of(state["space"])
    arch = Arch.from_dict(state["arch"]) if state.get("arch") else None
    return Checkpoint(path, state["kind"], space, arch, state)


def _space_of(info: dict[str, Any]) -> Space:
    """The checkpoint's space by its ref; when its base is a file absent here, from the saved YAML text."""
    try:
        return search_spaces.load(info["ref"])
    except SpaceError:
        if not info.get("yaml") or info["base_ref"] in search_spaces.list_spaces():
            raise
        search_spaces.space.register_text(info["base_ref"], info["yaml"])
        return search_spaces.load(info["ref"])


def _space_info(space: Space) -> dict[str, Any]:
    base = search_spaces.load(space.base_ref)
    return {"ref": space.ref, "name": space.name, "base_ref": space.base_ref, "overrides": _plain_data(space.overrides),
            "yaml": Path(base.source).read_text(encoding="utf-8") if base.source else ""}


def _plain_data(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain_data(v) for v in value]
    return value


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file beside `path`, flushed to disk, then renamed over `path`: a kill
    at any moment leaves either the old checkpoint or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- processes -------------------------------------------------------------------------------------
@dataclass
class Processes:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun) and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: str | None) -> Processes:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank, local_world = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise BadInput(f"--device {device}: expected cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise BadInput("--device cuda: no CUDA device here")
        dev = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
        if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:  # the cores shared by this machine's processes
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            torch.set_num_threads(max(1, cores // local_world))
        if world > 1:
            import torch.distributed as dist

            if device == "cuda":
                torch.cuda.set_device(dev)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device == "cuda" else "gloo")
            return cls(dist.get_rank(), dist.get_world_size(), dev)
        return cls(0, 1, dev)

    def allreduce_mean(self, tensors: list[torch.Tensor]) -> None:
        """Average `tensors` in place over the processes, in one all-reduce."""
        if self.world == 1 or not tensors:
            return
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        flat = _flatten_dense_tensors(tensors)
        dist.all_reduce(flat)
        flat /= self.world
        for t, reduced in zip(tensors, _unflatten_dense_tensors(flat, tensors)):
            t.copy_(reduced)

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        if self.world > 1:
            import torch.distributed as dist

            with torch.no_grad():
                for t in tensors:
                    dist.broadcast(t, 0)

    def stop(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def check_same(self, params: list[torch.Tensor]) -> None:
        """Raise if the processes' weights differ (a broken all-reduce would let them drift apart)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        sums = torch.stack([p.detach().double().sum() for p in params])  # on the device: NCCL reduces CUDA tensors
        low, high = sums.clone(), sums.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.allclose(low, high, rtol=1e-9, atol=1e-9):
            raise RuntimeError("the training processes' weights differ (gradients were not averaged alike)")


# ---- settings ------------------------------------------------------------------------------------
def resolve_settings(options: dict[str, Any]) -> dict[str, Any]:
    """A run's full settings from the options given (None or absent: default)."""
    settings = dict(DEFAULTS)
    settings.update({k: v for k, v in options.items() if v is not None})
    if not settings["data"]:
        raise BadInput("nas train needs --data (fashion-mnist, synthetic or an ImageFolder directory)")
    for key, low in (("epochs", 1), ("batch_size", 1), ("random_subnets", 0), ("save_every", 1), ("calib_batches", 1)):
        if int(settings[key]) < low:
            raise BadInput(f"--{key.replace('_', '-')} {settings[key]}: expected an integer >= {low}")
    if settings["max_steps"] is not None and settings["max_steps"] < 0:
        raise BadInput(f"--max-steps {settings['max_steps']}: expected an integer >= 0")
    if not settings["lr"] > 0 or not 0 <= settings["drop_path"] < 1 or not 0 <= settings["warmup"] < 1:
        raise BadInput("expected --lr > 0, 0 <= --drop-path < 1 and 0 <= warmup < 1")
    if not settings["supernet"]:  # a --supernet run takes its space and resolution from the checkpoint
        if settings["arch"] and not settings["space"]:  # the architecture's own space, not the data's default
            settings["space"] = search_spaces.load(settings["arch"]["space"]).base_ref
        for key, value in DATA_DEFAULTS.get(str(settings["data"]).partition(":")[0], {}).items():
            if settings[key] is None:
                settings[key] = value
    return settings


def _check_resume(saved: dict[str, Any], options: dict[str, Any], path: Path) -> dict[str, Any]:
    settings = dict(saved)
    settings["max_steps"] = None  # a stop for one invocation, not a setting of the run
    for key, value in options.items():
        if value is None or key in ("out",):
            continue
        if key in RESUME_MAY_CHANGE:
            settings[key] = value
        elif saved.get(key) != value:
            raise BadInput(f"--resume {path}: --{key.replace('_', '-')} {value} differs from the checkpoint's "
                           f"{saved.get(key)} (drop the option to continue, or train into another --out)")
    return settings


# ---- the trainer ---------------------------------------------------------------------------------
class Trainer:
    """One training run: the model, optimizer, schedule and position, from fresh settings or a checkpoint."""

    def __init__(self, settings: dict[str, Any], out: Path, procs: Processes, state: dict[str, Any] | None = None):
        self.settings, self.out, self.procs = settings, out, procs
        s = settings
        self.data = load_data(s["data"], seed=s["seed"])
        self.space, self.arch, init_state = self._model_plan(state)
        torch.manual_seed(s["seed"])
        if self.arch is None:
            self.model = supernet.SuperNet(self.space)
        else:
            self.model = supernet.SubNet(self.arch)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.model.set_drop_path(s["drop_path"])
        self.model.to(procs.device).train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        procs.broadcast(self.params)
        self.resolution = max(self.space.resolutions)
        self.steps_per_epoch = len(self._loader(0, 0))
        if not self.steps_per_epoch:
            raise BadInput(f"--data {s['data']}: {len(self.data.train)} training images, fewer than one batch "
                           f"(--batch-size {s['batch_size']})")
        self.total_steps = s["epochs"] * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, s["weight_decay"]), lr=s["lr"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = self.epoch = self.batch = 0
        self.history: list[dict[str, Any]] = []
        self.epoch_loss = [0.0, 0]
        if state is not None:
            self._restore(state)
        self._saved_at: int | None = self.step if state is not None else None

    # -- setup
    def _model_plan(self, state: dict[str, Any] | None) -> tuple[Space, Arch | None, dict | None]:
        """The training space (the data's classes, the run's resolution), the architecture of a
        single-architecture run, and weights to start from (``--supernet``)."""
        s = self.settings
        if state is not None:
            space = _space_of(state["space"])
            if space.num_classes != self.data.num_classes:
                raise BadInput(f"--data {s['data']}: {self.data.num_classes} classes now, {space.num_classes} in the "
                               "checkpoint")
            return space, Arch.from_dict(state["arch"]) if state.get("arch") else None, None
        start, init = None, None
        if s["supernet"]:
            start = load_checkpoint(s["supernet"])
            if start.kind != "supernet":
                raise BadInput(f"--supernet {s['supernet']}: a checkpoint of one architecture, not of a supernet")
            if s["space"] and search_spaces.load(s["space"]).ref != start.space.base_ref:
                raise BadInput(f"--space {s['space']}: the --supernet checkpoint was trained on {start.space.base_ref}")
            base = start.space
        else:
            base = search_spaces.load(s["space"] or DEFAULT_SPACE)
        resolutions = [s["resolution"]] if s["resolution"] else None
        space = base.derive(num_classes=self.data.num_classes, resolutions=resolutions)
        if start is not None and (space.ref != start.space.ref):
            raise BadInput(f"--supernet {s['supernet']}: trained for {start.space.num_classes} classes at "
                           f"{', '.join(map(str, start.space.resolutions))} px; this run needs {space.num_classes} "
                           f"classes at {', '.join(map(str, space.resolutions))} px")
        arch = adapt_arch(Arch.from_dict(s["arch"]), space) if s["arch"] is not None else None
        if start is not None:
            init = start.model().extract(arch).state_dict() if arch is not None else start.state["model"]
        return space, arch, init

    def _loader(self, epoch: int, start: int) -> Loader:
        s = self.settings
        workers = s["workers"] if s["workers"] is not None else (0 if self.data.train.images is not None else 1)
        return Loader(self.data, "train", resolution=max(self.space.resolutions), batch_size=s["batch_size"], train=True,
                      seed=s["seed"], epoch=epoch, rank=self.procs.rank, world=self.procs.world, start=start,
                      workers=workers)

    def _lr_factor(self, step: int) -> float:
        warmup = max(1, round(self.settings["warmup"] * self.total_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, self.total_steps - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    # -- one step
    def archs(self, step: int) -> list[Arch]:
        """The subnets of a step: the architecture alone, or largest, smallest and random ones (from (seed, step))."""
        if self.arch is not None:
            return [self.arch]
        rng = random.Random(seed_of(self.settings["seed"], 2, step))
        return [self.space.largest(), self.space.smallest()] + [self.space.sample(rng)
                                                                for _ in range(self.settings["random_subnets"])]

    def _forward(self, arch: Arch, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if isinstance(self.model, supernet.SuperNet):
            self.model.set_active(arch)
        return self.model(_resize(x, arch.resolution))

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimizer step on a batch; returns the largest subnet's (or the architecture's) loss."""
        s = self.settings
        self.optimizer.zero_grad(set_to_none=True)
        teacher, first = None, 0.0
        for arch in self.archs(self.step):
            heads = self._forward(arch, x)
            heads = heads if isinstance(heads, tuple) else (heads,)
            if teacher is None:
                loss = sum(F.cross_entropy(h, y, label_smoothing=s["label_smoothing"]) for h in heads) / len(heads)
                teacher = F.softmax(_logits(heads), dim=1).detach()
                first = loss.item()
            else:  # in-place distillation from the largest subnet
                loss = sum(F.kl_div(F.log_softmax(h, dim=1), teacher, reduction="batchmean") for h in heads) / len(heads)
            loss.backward()
        # Gradients are complete locally; average them once over the processes (see the module docstring).
        self.procs.allreduce_mean([p.grad for p in self.params if p.grad is not None])
        if s["clip"]:
            nn.utils.clip_grad_norm_(self.params, s["clip"])
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return first

    # -- validation
    def validate(self) -> dict[str, float]:
        """Top-1 (%) on the validation split: the largest and smallest subnets (BatchNorm recalibrated),
        or the architecture."""
        s = self.settings
        if self.arch is not None:
            val = Loader(self.data, "val", resolution=self.arch.resolution, batch_size=256, train=False)
            return {"top1": evaluate(self.model, val)}
        net = self.model
        return {name: evaluate_subnet(net, arch, self.data, calib_batches=s["calib_batches"], seed=s["seed"])
                for name, arch in (("largest", self.space.largest()), ("smallest", self.space.smallest()))}

    # -- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "kind": "supernet" if self.arch is None else "subnet",
            "space": _space_info(self.space), "arch": self.arch.to_dict() if self.arch else None,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "step": self.step, "epoch": self.epoch, "batch": self.batch,
            "complete": self.done, "epoch_loss": list(self.epoch_loss), "rng": _rng_state(),
            "settings": _plain_data(self.settings), "data": _plain_data(self.data.describe()), "history": self.history,
            "versions": {"torch": str(torch.__version__), "nas": _version()},
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]
        self.history, self.epoch_loss = list(state["history"]), list(state["epoch_loss"])
        _set_rng_state(state["rng"])

    def save(self) -> None:
        self.procs.check_same(self.params)
        if self.procs.main:
            save_atomic(self.state(), self.out)
        self.procs.barrier()
        self._saved_at = self.step

    @property
    def done(self) -> bool:
        return self.epoch >= self.settings["epochs"]

    # -- the loop
    def run(self, progress: Callable[[str, int, int, dict[str, Any]], None] | None = None,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Train to the end of ``epochs`` (or ``max_steps``), saving along the way; returns the result.

        ``progress(what, images_done, images_total, {"loss", "lr"})`` is called after every step and
        ``log(line)`` after every epoch (rank 0 only).
        """
        s, started = self.settings, time.perf_counter()
        images, train_seconds = 0, 0.0
        max_steps = s["max_steps"] if s["max_steps"] is not None else self.total_steps
        while not self.done and self.step < max_steps:
            tick = time.perf_counter()
            for x, y in self._loader(self.epoch, self.batch):
                loss = self.train_step(x.to(self.procs.device), y.to(self.procs.device))
                self.batch += 1
                self.epoch_loss = [self.epoch_loss[0] + loss, self.epoch_loss[1] + 1]
                images += s["batch_size"]
                if progress:
                    progress(f"epoch {self.epoch + 1}/{s['epochs']}", self.batch * s["batch_size"],
                             self.steps_per_epoch * s["batch_size"], {"loss": loss, "lr": self.scheduler.get_last_lr()[0]})
                if self.step >= max_steps:
                    break
                if self.step % s["save_every"] == 0 and self.batch < self.steps_per_epoch:
                    self.save()
            train_seconds += time.perf_counter() - tick
            if self.batch < self.steps_per_epoch:  # stopped by --max-steps inside the epoch
                break
            self._end_epoch(time.perf_counter() - tick, log)
            self.save()
        if self._saved_at != self.step or not self.out.exists():
            self.save()
        return self.result(time.perf_counter() - started, images / train_seconds if train_seconds else 0.0)

    def _end_epoch(self, seconds: float, log: Callable[[str], None] | None) -> None:
        val = self.validate() if self.procs.main else {}
        self.procs.barrier()
        loss = self.epoch_loss[0] / max(1, self.epoch_loss[1])
        self.history.append({"epoch": self.epoch + 1, "step": self.step, "loss": round(loss, 6),
                             "val_top1": {k: round(v, 3) for k, v in val.items()}, "seconds": round(seconds, 1)})
        self.epoch, self.batch, self.epoch_loss = self.epoch + 1, 0, [0.0, 0]
        if log:
            log(f"epoch {self.epoch}/{self.settings['epochs']}: loss {loss:.4f}, validation top-1 "
                + ", ".join(f"{k} {v:.2f}%" for k, v in val.items()))

    def result(self, seconds: float, images_per_s: float) -> dict[str, Any]:
        last = self.history[-1]["val_top1"] if self.history else {}
        return {"checkpoint": str(self.out), "kind": "supernet" if self.arch is None else "subnet",
                "space": self.space.ref, "arch": self.arch.to_dict() if self.arch else None, "data": self.settings["data"],
                "resolution": self.resolution, "epochs": self.epoch, "steps": self.step, "complete": self.done,
                "seconds": round(seconds, 1), "images_per_s": round(images_per_s, 1), "val_top1": last,
                "history": self.history}


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights only: not on biases, normalisation, layer scales or position-bias tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = p.ndim <= 1 or name.endswith(".bias") or "layer_scale" in name or "attention_biases" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nas-mobile-vit")
    except Exception:  # noqa: BLE001 - not installed (run from a checkout)
        return "unknown"


# ---- entry point -----------------------------------------------------------------------------------
def train(options: dict[str, Any], out: str | Path, *, resume: bool = False, device: str | None = None,
          progress: Callable | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Train a supernet (or, with ``options["arch"]``, one architecture) into the checkpoint `out`.

    `options` are the settings given (see :data:`DEFAULTS`; ``arch`` as a dict); with `resume` an
    existing checkpoint at `out` is continued exactly (its settings kept, the ones in
    :data:`RESUME_MAY_CHANGE` excepted). Returns the result (validation top-1, steps, images/s, ...);
    None in the processes of a torchrun job other than rank 0.
    """
    out = Path(out)
    state = None
    if out.exists():
        if not resume:
            raise BadInput(f"--out {out} exists: pass --resume to continue it, or choose another --out")
        ckpt = load_checkpoint(out)
        state = ckpt.state
        settings = _check_resume(state["settings"], options, out)
    else:
        settings = resolve_settings(options)
    procs = Processes.start(device or settings.get("device"))
    try:
        with _flush_denormals(procs.device):
            trainer = Trainer(settings, out, procs, state)
            if not procs.main:
                progress = log = None
            result = trainer.run(progress, log)
    finally:
        procs.stop()
    return result if procs.main else None


class _flush_denormals:
    """Flush denormal floats on CPU while training: layer scales start at 1e-5, and their products
    otherwise fall into the denormal range, which is many times slower on x86."""

    def __init__(self, device: torch.device):
        self.active = device.type == "cpu"

    def __enter__(self) -> None:
        if self.active:
            self.previous = torch.set_flush_denormal(True)

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            torch.set_flush_denormal(False)


def log_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
