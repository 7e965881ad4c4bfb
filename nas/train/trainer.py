"""Supernet training (sandwich rule, in-place distillation) and single-architecture training.

**Supernet step.** Each step runs the largest subnet, the smallest and ``random_subnets`` (2) random
ones on the same batch, accumulates their gradients and takes one optimizer step (the sandwich rule).
The largest learns from the labels (cross-entropy with label smoothing); the others learn from the
largest's predicted distribution, detached: in-place distillation, by KL divergence or (``--distill
alpha``) AlphaNet's adaptive alpha-divergence (``nas.train.distill``). The random subnets of a step are
drawn from (seed, step), so every process of a distributed run draws the same ones; ``--sample-gap``
bounds the MACs ratio between consecutive random subnets (the last one's MACs is in the checkpoint).
Subnets of a space with several resolutions see the batch resized to their own. Each subnet runs as
a view of the supernet (``SuperNet.view``), so the step leaves no subnet "active".

**Distillation head.** The spaces keep EfficientFormerV2's second (distillation) classifier. Both
heads learn the same target (the labels for the largest, its predictions for the others) and
evaluation averages their logits, as EfficientFormerV2 does; with no external teacher the two heads
are a two-member ensemble over the same features.

**Optimisation.** AdamW (no weight decay on biases, normalisation, layer scales and position biases),
linear warm-up then cosine decay per step over ``epochs`` (``max_steps`` only stops early, so a run
stopped and resumed follows the schedule of the uninterrupted one), gradient-norm clipping, optional
stochastic depth (``drop_path``). On CPU denormals are flushed while training: layer scales start at
1e-5, and their products otherwise fall into the denormal range, which is many times slower on x86.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import search_spaces
import supernet
from search_spaces import DEFAULT_SPACE, Arch, Space
from search_spaces.files import check_writable
from search_spaces.provenance import versions
from supernet.runtime import torch_settings

from ..errors import BadInput
from ..progress import ProgressCallback
from .acceleration import memory_format, to_device
from .checkpoint import (
    FORMAT,
    VERSION,
    adapt_arch,
    load_checkpoint,
    plain_data,
    rng_state,
    save_checkpoint,
    set_rng_state,
    space_info,
    space_of,
)
from .data import FileDecoder, Loader, load_data, seed_of
from .distill import distill_loss, sample_bounded
from .distributed import Processes
from .evaluation import evaluate, evaluate_subnet, logits_of, resize
from .interrupt import StopRequest, TrainingInterrupted
from .precision import autocast, grad_scaler
from .settings import TrainSettings


class Trainer:
    """One training run: the model, optimizer, schedule and position, from fresh settings or a checkpoint."""

    def __init__(self, settings: TrainSettings, out: Path, procs: Processes, state: dict[str, Any] | None = None):
        self.settings, self.out, self.procs = settings, out, procs
        s = settings
        self.data = load_data(s.data, seed=s.seed)
        if s.train_images is not None:
            self.data = self.data.subset(s.train_images)
        self.space, self.arch, init_state = self._model_plan(state)
        torch.manual_seed(s.seed)
        if self.arch is None:
            self.model = supernet.SuperNet(self.space)
        else:
            self.model = supernet.SubNet(self.arch)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.model.set_drop_path(s.drop_path)
        self.memory_format = memory_format(s.memory_format)
        self.model.to(procs.device, memory_format=self.memory_format).train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        procs.broadcast(self.params)
        self.resolution = max(self.space.resolutions)
        self._decoder: FileDecoder | None = None
        self.steps_per_epoch = len(self._loader(0, 0))
        if not self.steps_per_epoch:
            raise BadInput(
                f"--data {s.data}: {len(self.data.train)} training images, fewer than one batch (--batch-size {s.batch_size})"
            )
        self.total_steps = s.epochs * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, s.weight_decay), lr=s.lr)
        self.scaler = grad_scaler(s.precision, procs.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = self.epoch = self.batch = 0
        self.history: list[dict[str, Any]] = []
        self.epoch_loss = [0.0, 0]
        # Seconds the current epoch ran before this process (a checkpoint taken inside it), so that an
        # interrupted epoch's recorded time is its whole training time, not the part after the resume.
        self.epoch_seconds = 0.0
        self._tick: float | None = None
        self.previous_macs: float | None = None  # the last random subnet's, for --sample-gap
        if state is not None:
            self._restore(state)
        self._saved_at: int | None = self.step if state is not None else None

    # -- setup
    def _model_plan(self, state: dict[str, Any] | None) -> tuple[Space, Arch | None, dict | None]:
        """The training space (the data's classes, the run's resolution), the architecture of a
        single-architecture run, and weights to start from (``--supernet``)."""
        s = self.settings
        if state is not None:
            space = space_of(state["space"])
            if space.num_classes != self.data.num_classes:
                raise BadInput(f"--data {s.data}: {self.data.num_classes} classes now, {space.num_classes} in the checkpoint")
            return space, Arch.from_dict(state["arch"]) if state.get("arch") else None, None
        start, init = None, None
        if s.supernet:
            start = load_checkpoint(s.supernet)
            if start.kind != "supernet":
                raise BadInput(f"--supernet {s.supernet}: a checkpoint of one architecture, not of a supernet")
            if s.space and search_spaces.load(s.space).ref != start.space.base_ref:
                raise BadInput(f"--space {s.space}: the --supernet checkpoint was trained on {start.space.base_ref}")
            base = start.space
        else:
            base = search_spaces.load(s.space or DEFAULT_SPACE)
        resolutions = [s.resolution] if s.resolution else None
        space = base.derive(num_classes=self.data.num_classes, resolutions=resolutions)
        if start is not None and (space.ref != start.space.ref):
            raise BadInput(
                f"--supernet {s.supernet}: trained for {start.space.num_classes} classes at "
                f"{', '.join(map(str, start.space.resolutions))} px; this run needs {space.num_classes} "
                f"classes at {', '.join(map(str, space.resolutions))} px"
            )
        arch = adapt_arch(Arch.from_dict(s.arch), space) if s.arch is not None else None
        if start is not None:
            init = start.model().extract(arch).state_dict() if arch is not None else start.state["model"]
        return space, arch, init

    def _loader(self, epoch: int, start: int) -> Loader:
        s = self.settings
        workers = s.workers if s.workers is not None else (0 if self.data.train.images is not None else 1)
        pin = self.procs.device.type == "cuda"
        if self.data.train.images is None and self._decoder is None:  # image files: workers kept for every epoch
            self._decoder = FileDecoder(self.data.train, self.resolution, workers)
        return Loader(
            self.data,
            "train",
            resolution=max(self.space.resolutions),
            batch_size=s.batch_size,
            train=True,
            seed=s.seed,
            epoch=epoch,
            rank=self.procs.rank,
            world=self.procs.world,
            start=start,
            workers=workers,
            decoder=self._decoder,
            pin_memory=pin,
        )

    def _lr_factor(self, step: int) -> float:
        warmup = max(1, round(self.settings.warmup * self.total_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, self.total_steps - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    # -- one step
    def archs(self, step: int) -> list[Arch]:
        """The subnets of a step: the architecture alone, or largest, smallest and random ones (from
        (seed, step) and, under --sample-gap, the MACs of the random subnet before them)."""
        return self._draw(step)[0]

    def _draw(self, step: int) -> tuple[list[Arch], float | None]:
        """:meth:`archs` and, under --sample-gap, the MACs of the step's last random subnet (else None)."""
        if self.arch is not None:
            return [self.arch], None
        s = self.settings
        rng = random.Random(seed_of(s.seed, 2, step))
        out, previous = [self.space.largest(), self.space.smallest()], self.previous_macs
        for _ in range(s.random_subnets):
            out.append(sample_bounded(self.space, rng, previous, s.sample_gap, _macs))
            previous = _macs(out[-1]) if s.sample_gap else None
        return out, previous

    def _forward(self, arch: Arch, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = resize(x, arch.resolution)
        if isinstance(self.model, supernet.SuperNet):
            return self.model.view(arch)(x)
        return self.model(x)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimizer step on a batch; returns the largest subnet's (or the architecture's) loss."""
        s = self.settings
        self.optimizer.zero_grad(set_to_none=True)
        teacher, first = None, 0.0
        archs, last_macs = self._draw(self.step)
        if last_macs is not None:
            self.previous_macs = last_macs
        for arch in archs:
            with autocast(s.precision, self.procs.device):
                heads = self._forward(arch, x)
            heads = tuple(h.float() for h in (heads if isinstance(heads, tuple) else (heads,)))  # losses in fp32
            if teacher is None:
                loss = sum(F.cross_entropy(h, y, label_smoothing=s.label_smoothing) for h in heads) / len(heads)
                teacher = F.softmax(logits_of(heads), dim=1).detach()
                first = loss.item()
            else:  # in-place distillation from the largest subnet
                loss = distill_loss(s.distill, heads, teacher)
            (self.scaler.scale(loss) if self.scaler else loss).backward()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)  # true gradients for the all-reduce and the clip
        # Gradients are complete locally; average them once over the processes (see nas.train.distributed).
        self.procs.allreduce_mean([p.grad for p in self.params if p.grad is not None])
        if s.clip:
            nn.utils.clip_grad_norm_(self.params, s.clip)
        if self.scaler:
            self.scaler.step(self.optimizer)  # skipped when a gradient overflowed fp16
            self.scaler.update()
        else:
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
            top1 = evaluate(self.model, val, precision=s.precision, memory_format=self.memory_format, compile=s.compile_eval)
            return {"top1": top1}
        net = self.model
        return {
            name: evaluate_subnet(
                net,
                arch,
                self.data,
                calib_batches=s.calib_batches,
                seed=s.seed,
                precision=s.precision,
                memory_format=self.memory_format,
                compile=s.compile_eval,
            )
            for name, arch in (("largest", self.space.largest()), ("smallest", self.space.smallest()))
        }

    # -- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": "supernet" if self.arch is None else "subnet",
            "space": space_info(self.space),
            "arch": self.arch.to_dict() if self.arch else None,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch,
            "complete": self.done,
            "epoch_loss": list(self.epoch_loss),
            "epoch_seconds": self._epoch_seconds_now(),
            "previous_macs": self.previous_macs,
            "rng": rng_state(),
            "settings": plain_data(self.settings.to_dict()),
            "data": plain_data(self.data.describe()),
            "history": self.history,
            "versions": versions("torch"),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]
        self.history, self.epoch_loss = list(state["history"]), list(state["epoch_loss"])
        self.epoch_seconds = float(state.get("epoch_seconds", 0.0))  # absent in checkpoints of older versions
        self.previous_macs = state.get("previous_macs")  # absent in checkpoints written before --sample-gap
        set_rng_state(state["rng"])

    def save(self) -> None:
        self.procs.check_same(self.params)
        if self.procs.main:
            save_checkpoint(self.state(), self.out)
        self.procs.barrier()
        self._saved_at = self.step

    def close(self) -> None:
        """Stop the data-loading worker processes this run started (none for in-memory data)."""
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    @property
    def done(self) -> bool:
        return self.epoch >= self.settings.epochs

    # -- the loop
    def run(self, progress: ProgressCallback | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Train to the end of ``epochs`` (or ``max_steps``), saving along the way; returns the result.

        ``progress(images_done, images_total, "epoch E/N", loss=..., lr=...)`` is called after every step
        and ``log(line)`` after every epoch (rank 0 only). SIGINT or SIGTERM stops the run after the step
        under way, saved (:class:`~nas.train.interrupt.TrainingInterrupted`).
        """
        with StopRequest() as stop:
            return self._run(stop, progress, log)

    def _run(self, stop: StopRequest, progress: ProgressCallback | None, log: Callable[[str], None] | None) -> dict[str, Any]:
        s, started = self.settings, time.perf_counter()
        images, train_seconds = 0, 0.0
        max_steps = s.max_steps if s.max_steps is not None else self.total_steps
        while not self.done and self.step < max_steps:
            self._tick = time.perf_counter()
            for x, y in self._loader(self.epoch, self.batch):
                device = self.procs.device
                loss = self.train_step(to_device(x, device, self.memory_format), to_device(y, device))
                self.batch += 1
                self.epoch_loss = [self.epoch_loss[0] + loss, self.epoch_loss[1] + 1]
                images += s.batch_size
                if progress:
                    progress(
                        self.batch * s.batch_size,
                        self.steps_per_epoch * s.batch_size,
                        f"epoch {self.epoch + 1}/{s.epochs}",
                        loss=f"{loss:.3f}",
                        lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                    )
                if self.batch < self.steps_per_epoch:  # an epoch's last step stops after the epoch's end
                    self._stop_if_requested(stop)
                if self.step >= max_steps:
                    break
                if self.step % s.save_every == 0 and self.batch < self.steps_per_epoch:
                    self.save()
            elapsed = time.perf_counter() - self._tick
            train_seconds += elapsed
            self.epoch_seconds, self._tick = self.epoch_seconds + elapsed, None
            if self.batch < self.steps_per_epoch:  # stopped by --max-steps inside the epoch
                break
            self._end_epoch(self.epoch_seconds, log)
            self.save()
            if not self.done:
                self._stop_if_requested(stop)
        if self._saved_at != self.step or not self.out.exists():
            self.save()
        return self.result(time.perf_counter() - started, images / train_seconds if train_seconds else 0.0)

    def _stop_if_requested(self, stop: StopRequest) -> None:
        if self.procs.any_true(stop.requested):  # every process stops at the same step
            if self._saved_at != self.step:
                self.save()
            raise TrainingInterrupted(f"step {self.step} saved to {self.out}")

    def _epoch_seconds_now(self) -> float:
        """Seconds the current epoch has trained so far, in this process and in those it resumes."""
        return self.epoch_seconds + (time.perf_counter() - self._tick if self._tick is not None else 0.0)

    def _end_epoch(self, seconds: float, log: Callable[[str], None] | None) -> None:
        last = self.epoch + 1 == self.settings.epochs
        due = last or (self.epoch + 1) % self.settings.validate_every == 0
        val = self.validate() if self.procs.main and due else {}
        self.procs.barrier()
        loss = self.epoch_loss[0] / max(1, self.epoch_loss[1])
        self.history.append(
            {
                "epoch": self.epoch + 1,
                "step": self.step,
                "loss": round(loss, 6),
                "val_top1": {k: round(v, 3) for k, v in val.items()},
                "seconds": round(seconds, 1),
            }
        )
        self.epoch, self.batch, self.epoch_loss, self.epoch_seconds = self.epoch + 1, 0, [0.0, 0], 0.0
        if log:
            shown = ", ".join(f"{k} {v:.2f}%" for k, v in val.items())
            log(f"epoch {self.epoch}/{self.settings.epochs}: loss {loss:.4f}" + (f", validation top-1 {shown}" if val else ""))

    def result(self, seconds: float, images_per_s: float) -> dict[str, Any]:
        last = self.history[-1]["val_top1"] if self.history else {}
        return {
            "checkpoint": str(self.out),
            "kind": "supernet" if self.arch is None else "subnet",
            "space": self.space.ref,
            "arch": self.arch.to_dict() if self.arch else None,
            "data": self.settings.data,
            "resolution": self.resolution,
            "epochs": self.epoch,
            "steps": self.step,
            "complete": self.done,
            "seconds": round(seconds, 1),
            "images_per_s": round(images_per_s, 1),
            "val_top1": last,
            "history": self.history,
        }


def _macs(arch: Arch) -> float:
    return float(supernet.count(arch).macs)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights only: not on biases, normalisation, layer scales or position-bias tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = p.ndim <= 1 or name.endswith(".bias") or "layer_scale" in name or "attention_biases" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(
    options: Mapping[str, Any] | TrainSettings,
    out: str | Path,
    *,
    resume: bool = False,
    accelerator: str | None = None,
    progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """Train a supernet (or, with ``arch``, one architecture) into the checkpoint `out`.

    `options` are the settings given (the fields of :class:`TrainSettings`; ``arch`` as a dict), or the
    settings themselves; with `resume` an existing checkpoint at `out` is continued exactly (its settings
    kept, those of ``RESUME_MAY_CHANGE`` excepted). Returns the result (validation top-1, steps, images/s,
    ...); None in the processes of a torchrun job other than rank 0.
    """
    out = Path(out)
    check_writable(out, "checkpoint")
    given = options.to_dict() if isinstance(options, TrainSettings) else dict(options)
    state = None
    if out.exists():
        if not resume:
            raise BadInput(f"--out {out} exists: pass --resume to continue it, or choose another --out")
        ckpt = load_checkpoint(out)
        state = ckpt.state
        settings = ckpt.settings.resumed(given, str(out))
    else:
        settings = TrainSettings.resolve(given)
    procs = Processes.start(accelerator or settings.accelerator)
    try:
        with torch_settings(threads=procs.threads, flush_denormal=True if procs.device.type == "cpu" else None):
            trainer = Trainer(settings, out, procs, state)
            if not procs.main:
                progress = log = None
            try:
                result = trainer.run(progress, log)
            finally:
                trainer.close()
    finally:
        procs.stop()
    return result if procs.main else None


__all__ = ["Trainer", "train"]
