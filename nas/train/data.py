"""Image classification data for training the supernet and estimating accuracy.

Sources (``--data SRC``), none downloaded:

- ``fashion-mnist``: the IDX files of the Debian package ``dataset-fashion-mnist`` (gzipped or not) in
  ``/usr/share/datasets/fashion-mnist``; ``fashion-mnist:DIR`` or a directory holding such files reads
  them from elsewhere. Train 60,000 images, validation the 10,000 test images.
- an ImageFolder directory: ``DIR/train/CLASS/*.png`` and ``DIR/val/CLASS/*.png``, or ``DIR/CLASS/*``
  split into train and validation by a seeded shuffle (``val_fraction``). Images are decoded with PIL.
- ``synthetic`` or ``synthetic:train=512,val=256,classes=10,size=32,channels=3,seed=0``: random images
  whose class sets a smooth pattern, deterministic by its seed; for tests.

Images stay uint8 until a batch is formed; one function (:func:`prepare`) turns a batch into the network's
input: random crop with padding and horizontal flip for training, resizing to the resolution,
normalisation, grey to three channels. In-memory sets (Fashion-MNIST, synthetic) are batched in the main
process by indexing one tensor: a batch of 128 takes about 2 ms, 0.2% of a sandwich step here, so worker
processes would only add copies (``bench/bench_train.py`` prints the share). Image files are decoded in
DataLoader workers.
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces.errors import first_line

from ..errors import BadInput
from .acceleration import pinned
from .interrupt import ignore_interrupts_in_worker

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_HINT = "apt-get install dataset-fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SYNTHETIC_DEFAULTS = {"train": 512, "val": 256, "classes": 10, "size": 32, "channels": 3, "seed": 0}
#: Seed of the permutation that picks a training subset (fixed: not a run's seed).
SUBSET_SEED = 20261202
SOURCES = "fashion-mnist[:DIR], synthetic[:train=N,val=N,classes=N,size=N,channels=1|3,seed=N], or an ImageFolder directory"


@dataclass
class Split:
    """One split: labels, and either uint8 images in memory (N, C, H, W) or the image files to decode."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    files: list[Path] | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Data:
    """A data set: its splits, class names and normalisation, and the ``source`` that loads it again."""

    source: str
    name: str
    classes: list[str]
    train: Split
    val: Split
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, images: int, *, seed: int = SUBSET_SEED) -> Data:
        """This data set with a class-balanced subset of `images` training images (the validation split
        whole): the first images of each class in a permutation drawn from `seed`, by default a fixed
        one, so every run that asks for the same number trains on the same images whatever its own
        seed, and a larger subset holds a smaller one. A low-data regime separates architectures at a
        lower cost than the full set: see docs/accuracy-study.md."""
        chosen = self._subset_indices(images, seed)
        if chosen is None:
            return self
        return dataclasses.replace(self, train=self._pick(chosen), info={**self.info, "train_subset": images})

    def rest(self, images: int, *, seed: int = SUBSET_SEED) -> Data:
        """This data set with the training images that ``subset(images, seed=seed)`` leaves out as its
        validation split: images no run of that subset trained on, for a check on more images than
        the validation split holds."""
        chosen = self._subset_indices(images, seed)
        if chosen is None:
            raise BadInput(f"--train-images {images}: the whole training split; no image is left out")
        keep = torch.ones(len(self.train), dtype=torch.bool)
        keep[chosen] = False
        return dataclasses.replace(self, val=self._pick(torch.nonzero(keep).flatten()), info={**self.info, "val_rest_of": images})

    def _subset_indices(self, images: int, seed: int) -> torch.Tensor | None:
        """The sorted training indices of the class-balanced subset (None: the whole split)."""
        labels = self.train.labels
        if images >= len(labels):
            return None
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        per_class = [order[labels[order] == c] for c in range(self.num_classes)]
        quota = [images // self.num_classes + (c < images % self.num_classes) for c in range(self.num_classes)]
        if any(len(idx) < q for idx, q in zip(per_class, quota)):
            raise BadInput(f"--train-images {images}: some class of {self.source} has fewer than {max(quota)} training images")
        return torch.sort(torch.cat([idx[:q] for idx, q in zip(per_class, quota)])).values

    def _pick(self, indices: torch.Tensor) -> Split:
        """The training split's images at `indices`."""
        split = self.train
        return Split(
            split.labels[indices],
            images=None if split.images is None else split.images[indices],
            files=None if split.files is None else [split.files[i] for i in indices.tolist()],
        )

    def describe(self) -> dict:
        return {
            "source": self.source,
            "name": self.name,
            "classes": list(self.classes),
            "train": len(self.train),
            "val": len(self.val),
            "mean": list(self.mean),
            "std": list(self.std),
            **self.info,
        }


# ---- loading -------------------------------------------------------------------------------------
def load_data(source: str, *, seed: int = 0, val_fraction: float = 0.1) -> Data:
    """The data set `source` names (see the module docstring); BadInput, one line, when it is missing or empty.

    `seed` and `val_fraction` only split an ImageFolder directory without train/ and val/.
    """
    source = str(source).strip()
    kind, _, arg = source.partition(":")
    if kind == "fashion-mnist":
        return _idx_data(source, Path(arg) if arg else FASHION_MNIST_DIR, "fashion-mnist")
    if kind == "synthetic":
        return synthetic_data(source, **_synthetic_options(source, arg))
    path = Path(source)
    if path.is_dir():
        if _idx_paths(path, "train")[0] is not None:
            return _idx_data(source, path, path.name)
        return _folder_data(source, path, seed, val_fraction)
    raise BadInput(f"--data {source}: no such data set or directory (accepted: {SOURCES})")


def _idx_paths(directory: Path, split: str) -> tuple[Path | None, Path | None]:
    found = []
    for stem in IDX_FILES[split]:
        candidates = [directory / stem, directory / f"{stem}.gz", directory / stem.replace("-idx", ".idx")]
        found.append(next((p for p in candidates if p.is_file()), None))
    return found[0], found[1]


def _idx_data(source: str, directory: Path, name: str) -> Data:
    splits = {}
    for split in ("train", "val"):
        images, labels = _idx_paths(directory, split)
        if images is None or labels is None:
            missing = IDX_FILES[split][0 if images is None else 1]
            hint = f"; install it with: {FASHION_MNIST_HINT}" if directory == FASHION_MNIST_DIR else ""
            raise BadInput(f"--data {source}: no {missing}[.gz] in {directory}{hint}")
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or not len(y):
            raise BadInput(
                f"--data {source}: {images.name} holds {tuple(x.shape)} images but {labels.name} "
                f"{tuple(y.shape)} labels (expected N x H x W images and N labels, N > 0)"
            )
        splits[split] = Split(torch.from_numpy(y.astype(np.int64)), images=torch.from_numpy(x).unsqueeze(1))
    classes = int(max(splits["train"].labels.max(), splits["val"].labels.max())) + 1
    names = list(FASHION_MNIST_CLASSES) if name == "fashion-mnist" and classes == 10 else [str(c) for c in range(classes)]
    mean, std = _stats(splits["train"].images)
    return Data(source, name, names, splits["train"], splits["val"], mean, std, {"format": "idx", "path": str(directory)})


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (the MNIST format, gzipped when its name ends in .gz) as a numpy array."""
    path = Path(path)
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            data = f.read()
        zero, code, ndim = struct.unpack(">HBB", data[:4])
        dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        if zero != 0 or code not in dtypes:
            raise ValueError("bad magic number")
        array = np.frombuffer(bytearray(data), dtype=dtypes[code], offset=4 + 4 * ndim)
        return array.reshape(dims)
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise BadInput(f"{path}: not a readable IDX file ({exc})") from None


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units."""
    x = images.to(torch.float64).div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-3).tolist())


def _folder_data(source: str, root: Path, seed: int, val_fraction: float) -> Data:
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes = _class_dirs(source, root / "train")
        train, val = (_folder_split(source, root / part, classes) for part in ("train", "val"))
    else:
        classes = _class_dirs(source, root)
        whole = _folder_split(source, root, classes)
        order = torch.randperm(len(whole), generator=torch.Generator().manual_seed(seed)).tolist()
        n_val = max(1, round(len(order) * val_fraction))
        if len(order) < 2:
            raise BadInput(f"--data {source}: {len(order)} image; a train/val split needs at least 2")
        pick = [(sorted(order[n_val:]), "train"), (sorted(order[:n_val]), "val")]
        train, val = (Split(whole.labels[idx], files=[whole.files[i] for i in idx]) for idx, _ in pick)
    if len(classes) < 2:
        raise BadInput(f"--data {source}: one class ({classes[0]!r}); a classifier needs at least two class folders")
    for split in (train, val):
        _check_images(source, split.files)
    return Data(source, root.name, classes, train, val, info={"format": "imagefolder", "path": str(root)})


def _check_images(source: str, files: Sequence[Path]) -> None:
    """Open every image once before any training (a truncated or non-image file would otherwise stop a
    run partway, when its batch loads); reads headers and checks the file's structure, decodes nothing."""
    from PIL import Image

    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, SyntaxError, ValueError) as exc:  # PIL raises SyntaxError for some broken headers
            raise BadInput(f"--data {source}: {path}: not a readable image ({first_line(exc, 120)})") from None


def _class_dirs(source: str, root: Path) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise BadInput(
            f"--data {source}: {root} has no class subdirectories (expected {root}/CLASS/IMAGE.png, "
            f"or train/ and val/ each holding them; or use: {SOURCES})"
        )
    return classes


def _folder_split(source: str, root: Path, classes: list[str]) -> Split:
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        files += found
        labels += [label] * len(found)
    if not files:
        raise BadInput(f"--data {source}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders of {root}")
    return Split(torch.tensor(labels, dtype=torch.int64), files=files)


def _synthetic_options(source: str, arg: str) -> dict[str, int]:
    options = dict(SYNTHETIC_DEFAULTS)
    for item in filter(None, arg.split(",")):
        key, _, value = item.partition("=")
        if key not in options or not value.isdigit():
            raise BadInput(f"--data {source}: bad option {item!r} (accepted: {', '.join(f'{k}=N' for k in options)})")
        options[key] = int(value)
    if min(options["train"], options["val"], options["size"]) < 1 or options["classes"] < 2 or options["channels"] not in (1, 3):
        raise BadInput(f"--data {source}: needs train, val, size >= 1, classes >= 2 and channels 1 or 3")
    return options


def synthetic_data(
    source: str = "synthetic",
    *,
    train: int = 512,
    val: int = 256,
    classes: int = 10,
    size: int = 32,
    channels: int = 3,
    seed: int = 0,
) -> Data:
    """Random images that a small network can learn: each class has a smooth random pattern (a 4x4 grid
    upsampled), each image is its class pattern with a random brightness and noise. Deterministic by `seed`."""
    g = torch.Generator().manual_seed(seed)
    patterns = F.interpolate(
        torch.rand(classes, channels, 4, 4, generator=g), size=(size, size), mode="bilinear", align_corners=False
    )

    def split(n: int) -> Split:
        labels = torch.randint(0, classes, (n,), generator=g)
        gain = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
        noise = 0.15 * torch.randn(n, channels, size, size, generator=g)
        images = ((patterns[labels] * gain + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        return Split(labels, images=images)

    train_split, val_split = split(train), split(val)
    mean, std = _stats(train_split.images)
    return Data(
        source, "synthetic", [f"class{c}" for c in range(classes)], train_split, val_split, mean, std, {"format": "synthetic"}
    )


# ---- batches -------------------------------------------------------------------------------------
def seed_of(*parts: int) -> int:
    """A 63-bit seed mixed from integers (a run's seed, epoch, batch, ...), so every random choice of the
    data depends only on where it is, and a resumed run draws what the uninterrupted run would have."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def prepare(
    images: torch.Tensor, data: Data, resolution: int, crops: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """uint8 images (B, C, H, W) -> the network's float input (B, 3, resolution, resolution).

    With `crops` (training; see :func:`draw_crops`) each image is cropped from itself padded by an
    eighth of its side (zeros) and flipped horizontally where asked; then the batch is normalised with
    the data set's mean and standard deviation, resized (bilinear) and grey becomes three channels.
    """
    # crop and flip on the uint8 pixels (a quarter of the float bytes to move; the same values)
    x = (_crop_flip(images, *crops) if crops is not None else images).to(torch.float32)
    scale = 1 / (255 * torch.tensor(data.std, dtype=x.dtype).view(1, -1, 1, 1))
    x = (x - 255 * torch.tensor(data.mean, dtype=x.dtype).view(1, -1, 1, 1)) * scale
    if x.shape[-2:] != (resolution, resolution):  # after normalising: fewer pixels when upsampling, same result
        x = F.interpolate(
            x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=x.shape[-1] > resolution
        )
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def crop_padding(side: int) -> int:
    return max(1, round(side / 8))


def draw_crops(n: int, side: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random crop offsets (dy, dx) into images of `side` padded by crop_padding(side), and flips, for n images."""
    pad = crop_padding(side)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    return dy, dx, torch.rand(n, generator=generator) < 0.5


def _crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Each image's window at (dy, dx) of itself padded by crop_padding (zeros), mirrored where `flip`.
    One slice per image: a gather over every pixel's index cost as much as decoding the image."""
    _, _, H, W = x.shape
    pad = crop_padding(max(H, W))
    padded = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    for i, (top, left, mirrored) in enumerate(zip(dy.tolist(), dx.tolist(), flip.tolist())):
        window = padded[i, :, top : top + H, left : left + W]
        out[i] = window.flip(-1) if mirrored else window
    return out


class Loader:
    """The batches of one split for one epoch, as (input float (B, 3, R, R), labels int64 (B,)).

    Training batches follow a permutation drawn from (seed, epoch), drop the last partial batch and are
    augmented (unless `augment` is false); evaluation batches keep the split's order; both stop after
    the first `limit` images of their order when given. With `world` > 1 each global batch of
    `batch_size` is cut into `world` equal shards and this rank gets shard `rank`; crops and flips are
    drawn per global batch from (seed, epoch, batch), so the images of a step do not depend on the number
    of processes. `start` skips the first batches (a resumed epoch). Image files are decoded by `workers`
    DataLoader processes (0: in this process), or by `decoder`'s, which outlive the epoch. `pin_memory`
    puts batches in page-locked memory where CUDA can use it (nas.train.acceleration).
    """

    def __init__(
        self,
        data: Data,
        split: str,
        *,
        resolution: int,
        batch_size: int,
        train: bool,
        augment: bool | None = None,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world: int = 1,
        start: int = 0,
        limit: int | None = None,
        workers: int = 0,
        decoder: FileDecoder | None = None,
        pin_memory: bool = False,
    ):
        if batch_size % world:
            raise BadInput(f"--batch-size {batch_size} is not a multiple of the {world} processes")
        self.data, self.split = data, getattr(data, split)
        self.resolution, self.batch_size, self.train = resolution, batch_size, train
        self.augment = train if augment is None else augment
        self.seed, self.epoch, self.rank, self.world, self.start, self.workers = seed, epoch, rank, world, start, workers
        self.decoder, self.pin_memory = decoder, pin_memory
        n = len(self.split) if limit is None else min(limit, len(self.split))
        if train:
            order = torch.randperm(len(self.split), generator=torch.Generator().manual_seed(seed_of(seed, 0, epoch)))[:n]
            n_batches = n // batch_size
        else:
            order = torch.arange(n)
            n_batches = -(-n // batch_size)
        self.batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]

    def __len__(self) -> int:
        return len(self.batches)

    def _shard(self, batch: torch.Tensor) -> torch.Tensor:
        size = -(-len(batch) // self.world)
        return batch[self.rank * size : (self.rank + 1) * size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.split.images is not None:
            side = self.split.images.shape[-1]
            indices = [self._shard(b) for b in self.batches[self.start :]]
            raw = ((self.split.images[idx], self.split.labels[idx]) for idx in indices)
        else:
            side = self.resolution
            decoder = self.decoder or FileDecoder(self.split, self.resolution, self.workers, persistent=False)
            raw = decoder.decode([self._shard(b) for b in self.batches[self.start :]])
        for i, (images, labels) in enumerate(_one_line_errors(raw), self.start):
            crops = None
            if self.augment:
                generator = torch.Generator().manual_seed(seed_of(self.seed, 1, self.epoch, i))
                crops = tuple(self._shard(t) for t in draw_crops(len(self.batches[i]), side, generator))
            x = prepare(images, self.data, self.resolution, crops)
            yield (pinned(x), pinned(labels)) if self.pin_memory else (x, labels)


def _one_line_errors(batches: Iterable[Any]) -> Iterator[Any]:
    """The batches, with an input error raised in a DataLoader worker re-raised as its own one line (the
    DataLoader re-raises it with the worker's whole traceback in the message)."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except BadInput as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            last = lines[-1] if lines else str(exc)
            raise BadInput(last.split("BadInput: ", 1)[-1]) from None
        yield batch


class FileDecoder:
    """A split's image files decoded by `workers` DataLoader processes; with `persistent` they outlive
    each epoch (``persistent_workers``: otherwise every epoch starts them afresh) until :meth:`close`,
    and each :meth:`decode` call hands them that epoch's batches of indices. (Batches are pinned after
    preparation, in the training process: pinning the decoded uint8 batch would be a wasted copy.)"""

    def __init__(self, split: Split, resolution: int, workers: int, *, persistent: bool = True):
        self.split, self.resolution, self.workers = split, resolution, workers
        self._batches = _BatchList()
        self._loader: torch.utils.data.DataLoader | None = torch.utils.data.DataLoader(
            _Files(split, resolution),
            batch_sampler=self._batches,
            num_workers=workers,
            collate_fn=_stack,
            persistent_workers=persistent and workers > 0,
            worker_init_fn=ignore_interrupts_in_worker,
        )

    def decode(self, batches: Sequence[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The decoded (images, labels) of `batches` (index tensors), in order."""
        if self._loader is None:
            raise RuntimeError("FileDecoder.decode after close()")
        self._batches.batches = [b.tolist() for b in batches]
        return iter(self._loader)

    def close(self) -> None:
        """Stop the worker processes (idempotent)."""
        loader, self._loader = self._loader, None
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()


class _BatchList:
    """A batch sampler whose batches are replaced before each epoch (a DataLoader keeps its sampler)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


class _Files(torch.utils.data.Dataset):
    """Image files decoded with PIL to RGB at the training resolution (uint8, C x R x R)."""

    def __init__(self, split: Split, resolution: int):
        self.files, self.labels, self.resolution = split.files, split.labels, resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        try:
            with Image.open(self.files[i]) as image:
                image = image.convert("RGB").resize((self.resolution, self.resolution), Image.BILINEAR)
                array = np.asarray(image, dtype=np.uint8).copy()
        except OSError as exc:
            raise BadInput(f"{self.files[i]}: cannot read the image ({exc})") from None
        return torch.from_numpy(array).permute(2, 0, 1), self.labels[i]


def _stack(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])
