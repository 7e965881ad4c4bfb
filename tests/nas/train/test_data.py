"""Data sources (Fashion-MNIST IDX files, ImageFolder directories, synthetic), batches and bad-data errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli import main
from nas.errors import BadInput
from nas.train import data as nas_data
from nas.train.data import FileDecoder, Loader, _crop_flip, load_data, prepare, read_idx, synthetic_data


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def make_idx_dir(root: Path, n_train: int = 12, n_val: int = 6, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        stem_images, stem_labels = nas_data.IDX_FILES[split]
        suffix = ".gz" if gz else ""
        write_idx(root / f"{stem_images}{suffix}", images)
        write_idx(root / f"{stem_labels}{suffix}", labels)
        arrays[split] = images, labels
    return arrays["train"][0], arrays["train"][1]


def make_image_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 4, size: int = 20) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            if i % 2:  # grey images become three channels
                image = image.convert("L")
            image.save(folder / f"{c}_{i}.png")


def test_idx_reader_reads_gzipped_and_plain_files(tmp_path):
    images, labels = make_idx_dir(tmp_path / "gz")
    make_idx_dir(tmp_path / "plain", gz=False)
    assert np.array_equal(read_idx(tmp_path / "gz" / "train-images-idx3-ubyte.gz"), images)
    for source in (f"fashion-mnist:{tmp_path / 'gz'}", str(tmp_path / "plain")):
        d = load_data(source)
        assert (len(d.train), len(d.val)) == (12, 6)
        assert d.train.images.shape == (12, 1, 28, 28) and d.train.images.dtype == torch.uint8
        assert d.train.labels.tolist() == labels.tolist()
        assert d.num_classes == 10
    assert torch.equal(load_data(f"fashion-mnist:{tmp_path / 'gz'}").train.images[:, 0], torch.from_numpy(images))


def test_real_fashion_mnist():
    if not (nas_data.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    d = load_data("fashion-mnist")
    assert (len(d.train), len(d.val), d.num_classes) == (60000, 10000, 10)
    assert d.classes[9] == "Ankle boot" and d.train.labels[0] == 9 and d.val.labels[0] == 9
    assert 0.25 < d.mean[0] < 0.32 and 0.3 < d.std[0] < 0.4
    x, y = next(iter(Loader(d, "val", resolution=32, batch_size=8, train=False)))
    assert x.shape == (8, 3, 32, 32) and torch.equal(x[:, 0], x[:, 2])


def test_image_folder_with_train_and_val(tmp_path):
    for part in ("train", "val"):
        make_image_folder(tmp_path / "set" / part)
    d = load_data(str(tmp_path / "set"))
    assert d.classes == ["cat", "dog", "fox"] and (len(d.train), len(d.val)) == (12, 12)
    batches = list(Loader(d, "train", resolution=32, batch_size=4, train=True, workers=0))
    assert len(batches) == 3 and all(x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 for x, _ in batches)
    labels = torch.cat([y for _, y in Loader(d, "val", resolution=32, batch_size=5, train=False)])
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # decoding in a worker process gives the same batches
    workers = list(Loader(d, "train", resolution=32, batch_size=4, train=True, workers=1))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batches, workers))


def test_file_decoder_keeps_its_workers_across_epochs_and_after_a_partial_epoch(tmp_path):
    make_image_folder(tmp_path / "set" / "train")
    make_image_folder(tmp_path / "set" / "val")
    d = load_data(str(tmp_path / "set"))
    decoder = FileDecoder(d.train, 32, workers=1)
    epochs = [Loader(d, "train", resolution=32, batch_size=4, train=True, epoch=e, workers=1) for e in (0, 1)]
    first = next(iter(Loader(d, "train", resolution=32, batch_size=4, train=True, epoch=0, decoder=decoder)))
    iterator = decoder._loader._iterator  # the workers' iterator, started once
    for epoch, fresh in enumerate(epochs):  # the partial epoch above is abandoned; the next ones are whole
        shared = list(Loader(d, "train", resolution=32, batch_size=4, train=True, epoch=epoch, decoder=decoder))
        assert len(shared) == 3 and all(torch.equal(a, b) for (a, _), (b, _) in zip(shared, fresh))
        assert all(torch.equal(ya, yb) for (_, ya), (_, yb) in zip(shared, fresh))
    assert torch.equal(first[0], list(epochs[0])[0][0]) and decoder._loader._iterator is iterator
    workers = iterator._workers
    decoder.close()
    assert all(not w.is_alive() for w in workers)  # close() stops them


def test_file_decoder_workers_outlive_ctrl_c(tmp_path):
    """Ctrl-C reaches every process of the terminal's group; a worker it killed would fail the next
    batch before the training could save the step under way (the main process decides when to stop)."""
    import os
    import signal
    import time

    make_image_folder(tmp_path / "set" / "train")
    make_image_folder(tmp_path / "set" / "val")
    d = load_data(str(tmp_path / "set"))
    decoder = FileDecoder(d.train, 32, workers=1)
    try:
        assert len(list(Loader(d, "train", resolution=32, batch_size=4, train=True, epoch=0, decoder=decoder))) == 3
        workers = decoder._loader._iterator._workers
        for worker in workers:
            os.kill(worker.pid, signal.SIGINT)
        time.sleep(0.5)
        assert all(w.is_alive() for w in workers)
        assert len(list(Loader(d, "train", resolution=32, batch_size=4, train=True, epoch=1, decoder=decoder))) == 3
    finally:
        decoder.close()


def test_image_folder_split_by_seed(tmp_path):
    make_image_folder(tmp_path / "flat", per_class=10)
    a, b, c = (load_data(str(tmp_path / "flat"), seed=s, val_fraction=0.2) for s in (0, 0, 1))
    assert (len(a.train), len(a.val)) == (24, 6)
    assert a.val.files == b.val.files and a.val.files != c.val.files
    assert not set(a.train.files) & set(a.val.files) and len(set(a.train.files) | set(a.val.files)) == 30


def test_synthetic_is_deterministic_and_configurable():
    a, b = (
        load_data("synthetic:train=20,val=8,classes=3,size=16,channels=1"),
        synthetic_data(train=20, val=8, classes=3, size=16, channels=1),
    )
    assert torch.equal(a.train.images, b.train.images) and a.train.images.shape == (20, 1, 16, 16) and a.num_classes == 3
    assert not torch.equal(a.train.images, load_data("synthetic:train=20,val=8,classes=3,size=16,channels=1,seed=1").train.images)


def test_prepare_normalises_and_augments():
    d = synthetic_data(train=64, val=8, size=16)
    plain = prepare(d.train.images, d, 16)
    assert abs(plain.mean().item()) < 0.05 and abs(plain.std().item() - 1) < 0.05
    assert prepare(d.train.images, d, 32).shape == (64, 3, 32, 32)
    no_move = (torch.full((64,), 2), torch.full((64,), 2), torch.zeros(64, dtype=torch.bool))  # padding 2: the identity crop
    assert torch.allclose(prepare(d.train.images, d, 16, no_move), plain)
    flipped = (no_move[0], no_move[1], torch.ones(64, dtype=torch.bool))
    assert torch.allclose(prepare(d.train.images, d, 16, flipped), plain.flip(-1))


def test_random_crops_shift_each_image_by_its_own_offset_into_zero_padding():
    """A 4 x 4 image padded by 1 (an eighth of its side, at least 1): offset (0, 0) moves it down and right
    by one pixel with zeros coming in, (2, 1) up by one, and a flip mirrors the window, per image."""
    image = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4)
    batch = image.repeat(3, 1, 1, 1)
    out = _crop_flip(batch, torch.tensor([0, 2, 1]), torch.tensor([0, 1, 2]), torch.tensor([False, False, True]))
    padded = torch.nn.functional.pad(image[0, 0], (1, 1, 1, 1))
    assert out.dtype == torch.uint8
    assert torch.equal(out[0, 0], padded[0:4, 0:4]) and out[0, 0, 0].tolist() == [0, 0, 0, 0]
    assert out[0, 0, 1].tolist() == [0, 1, 2, 3]
    assert out[1, 0].tolist() == [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [0, 0, 0, 0]]
    assert torch.equal(out[2, 0], padded[1:5, 2:6].flip(-1)) and out[2, 0, 0].tolist() == [0, 4, 3, 2]


def test_loader_shards_do_not_change_the_global_batch():
    d = synthetic_data(train=64, val=8)
    whole = list(Loader(d, "train", resolution=32, batch_size=16, train=True, seed=3, epoch=1))
    shards = [
        list(Loader(d, "train", resolution=32, batch_size=16, train=True, seed=3, epoch=1, rank=r, world=2)) for r in range(2)
    ]
    for i, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([shards[0][i][0], shards[1][i][0]]), x)
        assert torch.equal(torch.cat([shards[0][i][1], shards[1][i][1]]), y)
    resumed = list(Loader(d, "train", resolution=32, batch_size=16, train=True, seed=3, epoch=1, start=2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(whole[2:], resumed)) and len(resumed) == 2
    other_epoch = next(iter(Loader(d, "train", resolution=32, batch_size=16, train=True, seed=3, epoch=2)))
    assert not torch.equal(other_epoch[1], whole[0][1])


def _train_error(capsys, tmp_path, source: str) -> str:
    assert main(["train", "--data", source, "--out", str(tmp_path / "ckpt.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "ckpt.pt").exists()
    return err


def test_bad_data_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    assert "no such data set" in _train_error(capsys, tmp_path, str(tmp_path / "missing"))
    monkeypatch.setattr(nas_data, "FASHION_MNIST_DIR", tmp_path / "not-installed")
    assert "apt-get install dataset-fashion-mnist" in _train_error(capsys, tmp_path, "fashion-mnist")
    (tmp_path / "empty").mkdir()
    assert "no class subdirectories" in _train_error(capsys, tmp_path, str(tmp_path / "empty"))
    (tmp_path / "noimages" / "cat").mkdir(parents=True)
    assert "no images" in _train_error(capsys, tmp_path, str(tmp_path / "noimages"))
    assert "bad option" in _train_error(capsys, tmp_path, "synthetic:pixels=3")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train-images-idx3-ubyte").write_bytes(b"\x01\x02")
    (tmp_path / "broken" / "train-labels-idx1-ubyte").write_bytes(b"\x01\x02")
    assert "not a readable IDX file" in _train_error(capsys, tmp_path, str(tmp_path / "broken"))


def test_training_subset_is_class_balanced_fixed_and_nested():
    from nas.train.data import load_data

    data = load_data("synthetic:train=200,val=20,classes=4")
    small, large = data.subset(40), data.subset(80)
    assert torch.bincount(small.train.labels).tolist() == [10, 10, 10, 10]
    assert len(large.train) == 80 and len(small.val) == len(data.val) == 20
    rows = {tuple(x.flatten().tolist()) for x in large.train.images}
    assert all(tuple(x.flatten().tolist()) in rows for x in small.train.images)  # a larger subset holds a smaller
    again = load_data("synthetic:train=200,val=20,classes=4", seed=5).subset(40)
    assert torch.equal(again.train.images, small.train.images)  # not the run's seed
    assert data.subset(500) is data and small.describe()["train"] == 40


def test_rest_of_a_subset_is_every_training_image_the_subset_left_out():
    from nas.train.data import load_data

    data = load_data("synthetic:train=200,val=20,classes=4")
    small, rest = data.subset(40), data.rest(40)
    assert len(rest.val) == 160 and torch.equal(rest.train.images, data.train.images)
    seen = {tuple(x.flatten().tolist()) for x in small.train.images}
    held = {tuple(x.flatten().tolist()) for x in rest.val.images}
    assert not seen & held and len(seen | held) == len({tuple(x.flatten().tolist()) for x in data.train.images})
    per_class = torch.bincount(data.train.labels)
    assert torch.equal(torch.bincount(rest.val.labels), per_class - 10)  # 10 of each class trained on
    with pytest.raises(BadInput, match="no image is left out"):
        data.rest(200)
