"""A training run's settings: one typed record, checked when made, stored in every checkpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import search_spaces

from ..errors import BadInput
from ..resume import resumed_settings
from .acceleration import DEFAULT_MEMORY_FORMAT, memory_format
from .distill import DISTILL_LOSSES
from .precision import PRECISIONS

#: Defaults for small data sets, chosen so one epoch of Fashion-MNIST takes minutes on two CPU cores.
DATA_DEFAULTS = {
    "fashion-mnist": {"space": "efficientformerv2-tiny", "resolution": 32},
    "synthetic": {"space": "efficientformerv2-tiny", "resolution": 32},
}
#: Settings a resumed run may change; any other must equal the checkpoint's.
RESUME_MAY_CHANGE = (
    "epochs",
    "max_steps",
    "save_every",
    "validate_every",
    "calib_batches",
    "workers",
    "accelerator",
    "precision",
    "memory_format",
    "compile_eval",
)


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a training run (the checkpoint keeps it, so ``--resume`` continues
    with it). ``None``: decided from the data or the space (see :meth:`resolve`)."""

    data: str | None = None
    space: str | None = None
    resolution: int | None = None
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.025
    warmup: float = 0.05
    label_smoothing: float = 0.1
    clip: float = 5.0
    drop_path: float = 0.0
    seed: int = 0
    train_images: int | None = None  # train on a class-balanced subset of this many images (Data.subset)
    random_subnets: int = 2
    distill: str = "kl"  # in-place distillation loss: kl or alpha (AlphaNet's adaptive alpha-divergence)
    sample_gap: float | None = None  # MACs ratio bound between consecutive random subnets (ElasticViT)
    arch: dict[str, Any] | None = None  # a single-architecture run: the architecture's dict
    supernet: str | None = None  # start from this trained supernet's weights
    save_every: int = 200
    validate_every: int = 1  # epochs between validations (the last epoch is always validated)
    calib_batches: int = 8
    workers: int | None = None
    accelerator: str | None = None  # cpu or cuda (None: cuda when available)
    precision: str = "fp32"  # fp32, bf16 or fp16 autocast (nas.train.precision)
    memory_format: str | None = None  # channels-last or contiguous (None: channels-last; nas.train.acceleration)
    compile_eval: bool = False  # torch.compile each validated subnet

    def __post_init__(self) -> None:
        for key, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("random_subnets", 0),
            ("save_every", 1),
            ("validate_every", 1),
            ("calib_batches", 1),
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise BadInput(f"--{key.replace('_', '-')} {value}: expected an integer >= {low}")
        if self.train_images is not None and (
            isinstance(self.train_images, bool) or not isinstance(self.train_images, int) or self.train_images < 1
        ):
            raise BadInput(f"--train-images {self.train_images}: expected an integer >= 1")
        if self.distill not in DISTILL_LOSSES:
            raise BadInput(f"--distill {self.distill}: expected one of {', '.join(DISTILL_LOSSES)}")
        if self.sample_gap is not None and (
            isinstance(self.sample_gap, bool) or not isinstance(self.sample_gap, (int, float)) or not self.sample_gap > 1
        ):
            raise BadInput(f"--sample-gap {self.sample_gap}: expected a MACs ratio > 1 (e.g. 2)")
        memory_format(self.memory_format)  # BadInput, one line, for an unknown format
        if not isinstance(self.compile_eval, bool):
            raise BadInput(f"compile_eval {self.compile_eval!r}: expected true or false")
        if self.arch is not None and (self.distill != "kl" or self.sample_gap is not None):
            raise BadInput(
                "--distill and --sample-gap shape supernet training; a single architecture (--arch) learns from its labels"
            )
        if self.precision not in PRECISIONS:
            raise BadInput(f"--precision {self.precision}: expected one of {', '.join(PRECISIONS)}")
        if self.max_steps is not None and self.max_steps < 0:
            raise BadInput(f"--max-steps {self.max_steps}: expected an integer >= 0")
        if not self.lr > 0 or not 0 <= self.drop_path < 1 or not 0 <= self.warmup < 1:
            raise BadInput("expected --lr > 0, 0 <= --drop-path < 1 and 0 <= warmup < 1")

    @classmethod
    def resolve(cls, options: Mapping[str, Any]) -> TrainSettings:
        """A new run's settings from the options given (None or absent: default): the data set's
        defaults fill the space and resolution; a single architecture's run trains in its own space."""
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown training settings: {', '.join(unknown)}")
        if not given.get("data"):
            raise BadInput("nas train needs --data (fashion-mnist, synthetic or an ImageFolder directory)")
        if not given.get("supernet"):  # a --supernet run takes its space and resolution from the checkpoint
            if given.get("arch") and not given.get("space"):  # the architecture's own space, not the data's default
                given["space"] = search_spaces.load(given["arch"]["space"]).base_ref
            for key, value in DATA_DEFAULTS.get(str(given["data"]).partition(":")[0], {}).items():
                given.setdefault(key, value)
        given.setdefault("memory_format", DEFAULT_MEMORY_FORMAT)  # by name, so the checkpoint says what ran
        return cls(**given)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainSettings:
        """Settings as a checkpoint stores them (keys this version does not know are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if "device" in data and "accelerator" not in data:  # checkpoints written before the rename
            values["accelerator"] = data["device"]
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resumed(self, options: Mapping[str, Any], checkpoint: str) -> TrainSettings:
        """These (a checkpoint's) settings continued with `options`: only :data:`RESUME_MAY_CHANGE` may
        differ; ``max_steps`` is a stop for one invocation, not a setting of the run."""
        stored = dict(self.to_dict(), max_steps=None)
        merged = resumed_settings(
            stored,
            {k: v for k, v in options.items() if k != "out"},
            may_change=RESUME_MAY_CHANGE,
            where="the checkpoint's",
            hint=f"{checkpoint}: drop the option to continue, or train into another --out",
        )
        return TrainSettings.from_dict(merged)


__all__ = ["TrainSettings", "DATA_DEFAULTS", "RESUME_MAY_CHANGE"]
