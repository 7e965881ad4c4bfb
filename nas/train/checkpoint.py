"""Training checkpoints: what they hold, writing them atomically, and reading them back safely.

A checkpoint (``--out``, written at the end of each epoch and every ``save_every`` steps) holds plain
data only, so ``torch.load(path, weights_only=True)`` reads it and no file can run code when loaded:
``model`` (the state_dict), ``optimizer``, ``scheduler``, ``step``/``epoch``/``batch``, the RNG states,
``space`` (the ref ``BASE?num_classes=..&resolutions=..``, its name and the base space's YAML text),
``arch`` (single-architecture runs), ``settings``, ``data`` and ``history`` (validation top-1 per epoch).
"""

from __future__ import annotations

import dataclasses
import pickle
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import search_spaces
import supernet
from search_spaces import Arch, Space, SpaceError
from search_spaces.errors import first_line
from search_spaces.files import atomic_write

from ..errors import BadInput
from .data import Data, load_data
from .settings import TrainSettings

FORMAT = "nas-train"
VERSION = 1


@dataclass
class Checkpoint:
    """A training checkpoint, read back (see the module docstring for what it holds)."""

    path: Path
    kind: str  # "supernet" or "subnet"
    space: Space
    arch: Arch | None
    state: dict[str, Any]

    @property
    def settings(self) -> TrainSettings:
        return TrainSettings.from_dict(self.state["settings"])

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
        """The training run's data set, its training subset included (or `source`, whole), for
        recalibration and validation."""
        if source is not None:
            return load_data(source, seed=self.settings.seed)
        data = load_data(self.settings.data, seed=self.settings.seed)
        return data if self.settings.train_images is None else data.subset(self.settings.train_images)


def adapt_arch(arch: Arch, space: Space, resolution: int | None = None) -> Arch:
    """`arch`'s genes in `space` (the same stages, another number of classes or resolutions) at
    `resolution` (default: `arch`'s when `space` offers it, else the space's largest)."""
    if resolution is None:
        resolution = arch.resolution if arch.resolution in space.resolutions else max(space.resolutions)
    adapted = dataclasses.replace(arch, space=space.ref, resolution=int(resolution))
    space.check(adapted)
    return adapted


def read_weights(path: str | Path, what: str) -> Any:
    """A torch file's content with ``weights_only=True`` and never a fallback: a full unpickling would run
    whatever code the file names. BadInput (one line) for a missing or unreadable file, or one that holds
    Python objects other than tensors and plain data."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{what} {path}: no such file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses or reads
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise BadInput(
            f"{what} {path}: holds Python objects other than tensors and plain data, which nas does not "
            "unpickle (it could run code); save the state_dict alone: torch.save(net.state_dict(), path)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a file that is not a checkpoint
        raise BadInput(f"{what} {path}: not a readable torch checkpoint ({first_line(exc, 200)})") from None


def is_checkpoint(data: Any) -> bool:
    """Whether loaded file content is a checkpoint written by ``nas train``."""
    return isinstance(data, dict) and data.get("format") == FORMAT


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``nas train``; BadInput (one line) when it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"no such checkpoint: {path}")
    state = read_weights(path, "checkpoint")
    if not is_checkpoint(state):
        raise BadInput(f"{path}: not a checkpoint written by nas train")
    version = state.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise BadInput(f"{path}: checkpoint version {version!r} is newer than this nas reads ({VERSION})")
    missing = [key for key in ("kind", "space", "model", "settings", "history") if key not in state]
    if (
        missing
        or state["kind"] not in ("supernet", "subnet")
        or not isinstance(state["model"], dict)
        or not isinstance(state["settings"], dict)
    ):
        raise BadInput(f"{path}: a damaged nas train checkpoint ({'missing ' + ', '.join(missing) if missing else 'bad fields'})")
    space = space_of(state["space"], path)
    try:
        arch = Arch.from_dict(state["arch"], source=f"{path} arch") if state.get("arch") else None
        TrainSettings.from_dict(state["settings"])
    except (SpaceError, TypeError) as exc:
        raise BadInput(f"{path}: a damaged nas train checkpoint ({first_line(exc)})") from None
    return Checkpoint(path, state["kind"], space, arch, state)


def space_of(info: Any, where: str | Path = "checkpoint") -> Space:
    """The checkpoint's space by its ref. A base space that is not shipped (nor loaded already) comes from
    the YAML text the checkpoint saved, never from the path it names: a checkpoint cannot make the tool
    open a file."""
    if not isinstance(info, dict) or not isinstance(info.get("ref"), str) or not isinstance(info.get("base_ref"), str):
        raise BadInput(f"{where}: a damaged nas train checkpoint (no space reference)")
    base, ref = info["base_ref"], info["ref"]
    if ref != base and not ref.startswith(base + "?"):
        raise BadInput(f"{where}: a damaged nas train checkpoint (space {ref!r} is not derived from {base!r})")
    if not search_spaces.is_known(base):
        if not isinstance(info.get("yaml"), str) or not info["yaml"]:
            raise BadInput(f"{where}: trained on space file {base!r}, absent here and not saved in the checkpoint")
        search_spaces.register_text(base, info["yaml"])
    return search_spaces.load(ref)


def space_info(space: Space) -> dict[str, Any]:
    """How a checkpoint records its space (enough to load it on a machine without the space file)."""
    base = space.base
    return {
        "ref": space.ref,
        "name": space.name,
        "base_ref": space.base_ref,
        "overrides": plain_data(space.overrides),
        "yaml": base.yaml_text,
    }


def plain_data(value: Any) -> Any:
    """Tuples as lists, recursively: what ``weights_only`` loading reads back as it was written."""
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [plain_data(v) for v in value]
    return value


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """torch.save, atomically: a kill at any moment leaves either the old checkpoint or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's random states, as plain data and tensors."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


__all__ = [
    "Checkpoint",
    "FORMAT",
    "VERSION",
    "adapt_arch",
    "load_checkpoint",
    "read_weights",
    "is_checkpoint",
    "save_checkpoint",
    "space_of",
    "space_info",
    "plain_data",
]
