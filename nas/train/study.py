"""A ground truth of trained accuracies for ranking the accuracy estimators: architectures spread over
a space, each trained alone with one fixed recipe and several seeds, kept as data.

Every finished training is one line of a JSON-lines file (architecture, recipe, seed, top-1, time,
machine), written atomically as soon as the training ends, so a study interrupted at any point loses
at most the training in progress (whose checkpoint resumes it), reruns train only what is missing, and
the file grows over several sessions and machines. Anybody can recompute the ranking tables from it.

The architectures come in a fixed order (:func:`spread_archs`) whose every prefix is spread over the
space, so a study of 8 architectures is the start of the study of 24.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import search_spaces
import supernet
from latency_lut.host import host_description  # the one description of a machine
from search_spaces import Arch, Space
from search_spaces.files import atomic_write_text, read_text
from search_spaces.provenance import versions

from ..errors import BadInput
from .acceleration import DEFAULT_MEMORY_FORMAT, MEMORY_FORMATS
from .checkpoint import load_checkpoint
from .evaluation import evaluate_subnet
from .settings import RESUME_MAY_CHANGE
from .trainer import train

#: The data set's fields a recipe fixes (the rest are TrainSettings' defaults).
_RECIPE_SETTINGS = (
    "data",
    "resolution",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "train_images",
    "label_smoothing",
    "memory_format",
)


@dataclass(frozen=True)
class Recipe:
    """The one way every architecture of a study is trained. A ground truth belongs to its recipe (the
    same subnets ranked under two recipes can disagree), so results of different recipes never mix."""

    name: str
    data: str = "fashion-mnist"
    space: str = "efficientformerv2"
    resolution: int = 64
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.025
    label_smoothing: float = 0.1
    train_images: int | None = 5000
    #: Rounding differs between layouts, so a recipe names its own (``fm5k-e8-64`` was trained before
    #: channels-last became the default; it runs at about two thirds of the speed on CPU).
    memory_format: str = "contiguous"

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ "):
            raise BadInput(f"recipe name {self.name!r}: expected a non-empty name without spaces or slashes")
        if self.memory_format not in MEMORY_FORMATS:
            expected = ", ".join(MEMORY_FORMATS)
            raise BadInput(f"recipe {self.name}: memory_format {self.memory_format!r}, expected one of {expected}")

    def study_space(self, num_classes: int = 10) -> Space:
        """The space the study's architectures are trained in: the recipe's space at its resolution."""
        return search_spaces.load(self.space).derive(num_classes=num_classes, resolutions=[self.resolution])

    def common_settings(self, seed: int) -> dict[str, Any]:
        """The training settings every run of the study shares (data, resolution, schedule, optimiser)."""
        return {**{k: getattr(self, k) for k in _RECIPE_SETTINGS}, "seed": int(seed)}

    def settings(self, arch: Arch, seed: int) -> dict[str, Any]:
        """The training settings of `arch` under this recipe with `seed` (for nas.train.train)."""
        return {
            **self.common_settings(seed),
            "arch": arch.to_dict(),
            "validate_every": self.epochs,  # only the last epoch: validation would cost a fifth of the time
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainedResult:
    """One finished training of a study: what was trained, how, and the top-1 it reached."""

    arch: Arch
    recipe: str
    seed: int
    top1: float
    seconds: float
    params: int
    macs: int
    host: str = ""
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.arch.id, self.recipe, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch_id": self.arch.id,
            "recipe": self.recipe,
            "seed": self.seed,
            "top1": round(self.top1, 4),
            "seconds": round(self.seconds, 1),
            "params": self.params,
            "macs": self.macs,
            "arch": self.arch.to_dict(),
            "host": self.host,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainedResult:
        return cls(
            arch=Arch.from_dict(data["arch"]),
            recipe=str(data["recipe"]),
            seed=int(data["seed"]),
            top1=float(data["top1"]),
            seconds=float(data["seconds"]),
            params=int(data["params"]),
            macs=int(data["macs"]),
            host=str(data.get("host", "")),
            versions=dict(data.get("versions", {})),
        )


class _JsonLines:
    """Records kept as a JSON-lines file, one per key: read once (BadInput naming file:line on a damaged
    line), and rewritten atomically on every add, so an interruption leaves the old file whole."""

    def __init__(self, path: str | Path, parse: Callable[[dict[str, Any]], Any], what: str):
        self.path = Path(path)
        self.results: dict[Any, Any] = {}
        if self.path.exists():
            for number, line in enumerate(read_text(self.path, "results file", BadInput).splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    record = parse(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise BadInput(f"{self.path}:{number}: not {what} ({exc})") from None
                self.results[record.key] = record

    def add(self, record: Any) -> None:
        """Record `record` (replacing one of the same key) and rewrite the file atomically."""
        self.results[record.key] = record
        lines = [json.dumps(r.to_dict(), sort_keys=True) for r in self.results.values()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "\n".join(lines) + "\n")


class GroundTruth(_JsonLines):
    """The results file of a study (JSON lines, one finished training each), read once and appended to."""

    def __init__(self, path: str | Path):
        super().__init__(path, TrainedResult.from_dict, "a training result")

    def get(self, arch: Arch, recipe: str, seed: int) -> TrainedResult | None:
        return self.results.get((arch.id, recipe, int(seed)))

    def top1(self, archs: Sequence[Arch], recipe: str, seed: int) -> list[float | None]:
        """Each architecture's top-1 under (recipe, seed), None where it is not trained yet."""
        return [None if (r := self.get(a, recipe, seed)) is None else r.top1 for a in archs]

    def complete(self, archs: Sequence[Arch], recipe: str, seeds: Sequence[int]) -> tuple[list[Arch], np.ndarray]:
        """The architectures of `archs` trained with every one of `seeds`, and their top-1 as an array
        of one row per seed (the truth the estimators are ranked against is its mean over rows)."""
        if not seeds:
            raise ValueError("GroundTruth.complete needs at least one seed")
        columns = {s: self.top1(archs, recipe, s) for s in seeds}
        keep = [i for i in range(len(archs)) if all(columns[s][i] is not None for s in seeds)]
        per_seed = np.array([[columns[s][i] for i in keep] for s in seeds], dtype=float).reshape(len(seeds), len(keep))
        return [archs[i] for i in keep], per_seed


#: The recipes studied (see docs/accuracy-study.md for the pilot that chose among them).
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("fm5k-e8-64", train_images=5000, epochs=8),
        # each of the 60,000 training images once: 60k image passes (fm5k-e8 40k, fm5k-e16 80k), all of
        # them distinct, to test whether more data (nothing to memorise) widens the spread of architectures
        Recipe("fm60k-e1-64", train_images=None, epochs=1, memory_format="channels-last"),
        # the baseline's schedule twice as long, in the faster layout (same function, other rounding)
        Recipe("fm5k-e16-64", train_images=5000, epochs=16, memory_format="channels-last"),
    )
}


#: Architectures above this many MACs (at the study's 64 px) are left out of the study: one would take
#: over 15 min per training on two CPU cores. S2's 1.25 GMAC at 224 px is 0.10 GMAC at 64 px.
STUDY_MAX_MACS = 150e6


def study_archs(recipe: Recipe, n: int) -> list[Arch]:
    """The study's first `n` architectures under `recipe` (a fixed order: see :func:`spread_archs`)."""
    return spread_archs(recipe.study_space(), n, seed=0, max_macs=STUDY_MAX_MACS)


def arch_features(arch: Arch) -> np.ndarray:
    """What :func:`spread_archs` spreads over: log parameters, log MACs, total depth, log mean width,
    mean FFN ratio and the share of blocks of each mixer of the architecture's space."""
    space = search_spaces.load(arch.space)
    mixers = sorted({m for stage in space.stages for m in stage.mixers})
    blocks = [m for stage in arch.mixers for m in stage]
    counts = supernet.count(arch)
    ratios = [r for stage in arch.ratios for r in stage]
    return np.array(
        [
            np.log(counts.params),
            np.log(counts.macs),
            sum(arch.depths),
            np.log(np.mean(arch.widths)),
            np.mean(ratios),
            *[blocks.count(m) / len(blocks) for m in mixers],
        ]
    )


def spread_archs(space: Space, n: int, *, seed: int = 0, pool: int = 3000, max_macs: float | None = None) -> list[Arch]:
    """`n` architectures of `space` in an order whose every prefix is spread: the smallest first, then,
    greedily, the random architecture farthest (in standardised :func:`arch_features`) from all chosen
    so far (farthest-point sampling). The order depends only on (space, seed, pool, max_macs), not on
    `n`, so a study can grow. `max_macs` leaves out architectures above that many MACs (the cost of a
    training grows with them)."""
    rng = np.random.default_rng(seed)
    candidates = {space.smallest().id: space.smallest()}
    for _ in range(pool):
        arch = space.sample(rng)
        candidates.setdefault(arch.id, arch)
    archs = [a for a in candidates.values() if max_macs is None or supernet.count(a).macs <= max_macs]
    if n > len(archs):
        raise BadInput(f"{n} architectures asked of a pool of {len(archs)}")
    features = np.stack([arch_features(a) for a in archs])
    spread = features.std(axis=0)
    features = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    chosen = [0]
    distance = np.linalg.norm(features - features[0], axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(features - features[nxt], axis=1))
    return [archs[i] for i in chosen]


def checkpoint_path(checkpoints: str | Path, recipe: Recipe, arch: Arch, seed: int) -> Path:
    """Where the training of `arch` with `seed` under `recipe` keeps its checkpoint."""
    return Path(checkpoints) / recipe.name / f"seed{seed}" / f"{arch.id}.pt"


def train_one(
    arch: Arch,
    recipe: Recipe,
    seed: int,
    checkpoints: str | Path,
    log: Callable[[str], None] | None = None,
) -> TrainedResult:
    """Train `arch` alone under `recipe` with `seed` (resuming its checkpoint if an earlier run was
    interrupted); its top-1 is the last epoch's, on the whole validation split, and its time the
    training's (validation excluded)."""
    path = checkpoint_path(checkpoints, recipe, arch, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(path) if path.exists() else None
    if ckpt is None or not ckpt.state["complete"]:
        train(recipe.settings(arch, seed), path, resume=ckpt is not None, log=log)
        ckpt = load_checkpoint(path)
    history = ckpt.state["history"]
    top1 = history[-1]["val_top1"]["top1"]  # the last epoch's, on the whole validation split
    counts = supernet.count(ckpt.arch)
    return TrainedResult(
        arch=ckpt.arch,
        recipe=recipe.name,
        seed=int(seed),
        top1=float(top1),
        seconds=sum(epoch["seconds"] for epoch in history),  # training only (an interrupted epoch: before and after its resume)
        params=counts.params,
        macs=counts.macs,
        host=host_description(),
        versions=versions("torch"),
    )


def grow(
    truth: GroundTruth,
    archs: Sequence[Arch],
    recipe: Recipe,
    seeds: Sequence[int],
    checkpoints: str | Path,
    report: Callable[[int, int, TrainedResult], None] | None = None,
) -> list[TrainedResult]:
    """Train what `truth` does not hold yet of `archs` x `seeds` under `recipe` (every seed of one
    architecture before the next), recording each result as soon as it is finished; returns them."""
    todo = [(a, s) for a in archs for s in seeds if truth.get(a, recipe.name, s) is None]
    done = []
    for i, (arch, seed) in enumerate(todo, 1):
        result = train_one(arch, recipe, seed, checkpoints)
        truth.add(result)
        done.append(result)
        if report:
            report(i, len(todo), result)
    return done


# ---- supernets ranked on the study ---------------------------------------------------------------
@dataclass(frozen=True)
class SupernetRecipe:
    """How a supernet of a study's space is trained on the study's data: the levers that may make its
    subnets' accuracies rank like the trained truth (schedule length, distillation loss, bounded
    sampling). Data, resolution, batch, learning rate and regularisation are the study recipe's."""

    name: str
    epochs: int = 8
    distill: str = "kl"
    sample_gap: float | None = None
    random_subnets: int = 2

    def settings(self, recipe: Recipe, seed: int) -> dict[str, Any]:
        """The settings of nas.train.train for this supernet under the study `recipe` with `seed`."""
        return {
            **recipe.common_settings(seed),
            "memory_format": DEFAULT_MEMORY_FORMAT,  # the fastest; nothing compares a supernet to the truth's rounding
            "space": recipe.space,
            "epochs": self.epochs,
            "distill": self.distill,
            "sample_gap": self.sample_gap,
            "random_subnets": self.random_subnets,
            "validate_every": self.epochs,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The supernet recipes tried on the study (docs/accuracy-study.md): a baseline and one lever each.
SUPERNET_RECIPES: dict[str, SupernetRecipe] = {
    r.name: r
    for r in (
        SupernetRecipe("kl-e8"),
        SupernetRecipe("alpha-e8", distill="alpha"),
        SupernetRecipe("kl-gap2-e8", sample_gap=2.0),
        SupernetRecipe("kl-e24", epochs=24),
        # the same levers at the scale of the 60,000-image recipe fm60k-e1-64 (one epoch there is twelve of fm5k)
        SupernetRecipe("kl-e1", epochs=1),
        SupernetRecipe("alpha-e1", epochs=1, distill="alpha"),
        SupernetRecipe("kl-gap2-e1", epochs=1, sample_gap=2.0),
        SupernetRecipe("kl-e2", epochs=2),
        SupernetRecipe("kl-e3", epochs=3),
    )
}


@dataclass(frozen=True)
class SupernetScores:
    """A trained supernet's estimates of the study's architectures (BatchNorm recalibrated on
    `calib_batches` batches), grown as the study grows, with what training and scoring cost."""

    recipe: str
    supernet: str
    seed: int
    calib_batches: int
    top1: dict[str, float]  # architecture id -> the supernet's top-1 of it
    train_seconds: float
    eval_seconds: float  # summed over the architectures scored
    host: str = ""
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.recipe, self.supernet, self.seed, self.calib_batches)

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "top1": {k: round(v, 4) for k, v in self.top1.items()},
            "train_seconds": round(self.train_seconds, 1),
            "eval_seconds": round(self.eval_seconds, 1),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupernetScores:
        return cls(
            recipe=str(data["recipe"]),
            supernet=str(data["supernet"]),
            seed=int(data["seed"]),
            calib_batches=int(data["calib_batches"]),
            top1={str(k): float(v) for k, v in data["top1"].items()},
            train_seconds=float(data["train_seconds"]),
            eval_seconds=float(data["eval_seconds"]),
            host=str(data.get("host", "")),
            versions=dict(data.get("versions", {})),
        )


class SupernetStudy(_JsonLines):
    """The file of every supernet's scores of the study's architectures (JSON lines)."""

    def __init__(self, path: str | Path):
        super().__init__(path, SupernetScores.from_dict, "supernet scores")

    def get(self, recipe: str, supernet_name: str, seed: int, calib_batches: int) -> SupernetScores | None:
        return self.results.get((recipe, supernet_name, int(seed), int(calib_batches)))


def train_supernet(
    recipe: Recipe,
    lever: SupernetRecipe,
    seed: int,
    checkpoints: str | Path,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, float]:
    """Train (or finish training) the supernet `lever` on the study `recipe`: its checkpoint and its
    training seconds (validation excluded; an epoch interrupted and resumed counts both parts)."""
    path = Path(checkpoints) / recipe.name / "supernets" / f"{lever.name}-seed{seed}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(path) if path.exists() else None
    if ckpt is not None:
        stored, wanted = ckpt.settings.to_dict(), lever.settings(recipe, seed)
        # what a resume may change (the schedule's length, the memory layout, ...) is applied by resuming
        changed = sorted(k for k, v in wanted.items() if k not in RESUME_MAY_CHANGE and stored.get(k) != v)
        if changed:
            raise BadInput(
                f"{path}: trained with other settings than supernet recipe {lever.name} ({', '.join(changed)}); move it away"
            )
    if ckpt is None or not ckpt.state["complete"]:
        train(lever.settings(recipe, seed), path, resume=ckpt is not None, log=log)
        ckpt = load_checkpoint(path)
    return path, sum(epoch["seconds"] for epoch in ckpt.state["history"])


def score_supernet(
    study: SupernetStudy,
    recipe: Recipe,
    lever: SupernetRecipe,
    seed: int,
    archs: Sequence[Arch],
    calib_batches: int,
    checkpoints: str | Path,
    log: Callable[[str], None] | None = None,
) -> SupernetScores:
    """The supernet `lever`'s estimates of `archs` with `calib_batches` recalibration batches, training
    it first if needed and scoring only the architectures `study` does not hold yet; recorded in `study`."""
    path, train_seconds = train_supernet(recipe, lever, seed, checkpoints, log)
    known = study.get(recipe.name, lever.name, seed, calib_batches)
    top1, spent = dict(known.top1) if known else {}, known.eval_seconds if known else 0.0
    todo = [a for a in archs if a.id not in top1]
    if todo:
        ckpt = load_checkpoint(path)  # what the supernet estimator of the search does, per architecture
        net, data = ckpt.model(), ckpt.data()
        start = time.perf_counter()
        for arch in todo:
            top1[arch.id] = float(evaluate_subnet(net, ckpt.adapt(arch), data, calib_batches=calib_batches, seed=seed))
        spent += time.perf_counter() - start
    if known is not None and not todo:
        return known
    scores = SupernetScores(
        recipe=recipe.name,
        supernet=lever.name,
        seed=int(seed),
        calib_batches=int(calib_batches),
        top1=top1,
        train_seconds=train_seconds,
        eval_seconds=spent,
        host=host_description(),
        versions=versions("torch"),
    )
    study.add(scores)
    return scores


__all__ = [
    "study_archs",
    "SupernetRecipe",
    "SUPERNET_RECIPES",
    "SupernetScores",
    "SupernetStudy",
    "train_supernet",
    "score_supernet",
    "STUDY_MAX_MACS",
    "grow",
    "RECIPES",
    "checkpoint_path",
    "Recipe",
    "TrainedResult",
    "GroundTruth",
    "spread_archs",
    "arch_features",
    "train_one",
]
