"""Training ready for GPUs: channels-last memory format, compiled evaluation, and the CUDA paths, which
assert where a GPU exists and skip with the reason where none does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nas.train.evaluation as evaluation
from nas.errors import BadInput
from nas.train import Processes, Trainer, TrainSettings, evaluate_subnet, load_checkpoint, train
from nas.train.acceleration import memory_format, pinned

DATA = "synthetic:train=32,val=16,classes=4"
OPTIONS = {"data": DATA, "batch_size": 8, "epochs": 1, "seed": 2}
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def _losses(fmt: str, steps: int = 3) -> tuple[list[float], Trainer]:
    trainer = Trainer(TrainSettings.resolve(dict(OPTIONS, memory_format=fmt)), Path("unused.pt"), Processes())
    batches = list(trainer._loader(0, 0))[:steps]
    return [trainer.train_step(x.to(memory_format=trainer.memory_format), y) for x, y in batches], trainer


def test_channels_last_trains_the_same_function_with_weights_stored_nhwc():
    losses_cl, trainer = _losses("channels-last")
    losses_plain, _ = _losses("contiguous")
    # the same first loss to rounding; later ones drift a little: Adam's first steps move a weight by
    # about lr whatever its gradient's size, so gradients that are pure rounding (a conv bias before a
    # BatchNorm) may step either way
    assert losses_cl[0] == pytest.approx(losses_plain[0], rel=1e-6)
    assert losses_cl == pytest.approx(losses_plain, rel=1e-2)
    conv = [p for p in trainer.model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert conv and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    assert memory_format(None) == torch.channels_last  # the default on every device (faster on CPU too)
    with pytest.raises(BadInput, match="--memory-format nhwc"):
        TrainSettings.resolve(dict(OPTIONS, memory_format="nhwc"))
    x = torch.ones(2)
    assert pinned(x) is x or torch.cuda.is_available()  # nothing pinned without CUDA


def test_compiled_channels_last_evaluation_matches_eager(tmp_path, monkeypatch):
    # dynamo's graph capture with the eager backend: what --compile-eval traces, without a C++ build
    calls = []

    def compiled(model):
        calls.append(type(model).__name__)
        return torch.compile(model, backend="aot_eager", dynamic=False)

    monkeypatch.setattr(evaluation, "compiled", compiled)
    result = train(dict(OPTIONS, memory_format="channels-last", compile_eval=True), tmp_path / "s.pt")
    assert len(calls) == 2  # the largest and the smallest subnet, each compiled once
    ckpt = load_checkpoint(tmp_path / "s.pt")
    assert ckpt.settings.compile_eval and ckpt.settings.memory_format == "channels-last"
    net, arch = ckpt.model(), ckpt.space.largest()
    eager = evaluate_subnet(net, arch, ckpt.data(), calib_batches=ckpt.settings.calib_batches, seed=2)
    assert result["val_top1"]["largest"] == pytest.approx(eager, abs=100 / 16 + 1e-9)  # at most one image of 16
    # both settings may change on resume
    again = train(dict(OPTIONS, epochs=2, memory_format="contiguous", compile_eval=False), tmp_path / "s.pt", resume=True)
    assert again["epochs"] == 2 and len(calls) == 2  # validated again, not compiled


@NO_CUDA
def test_cuda_bf16_channels_last_training_smoke(tmp_path):
    result = train(dict(OPTIONS, accelerator="cuda", precision="bf16", compile_eval=True), tmp_path / "gpu.pt")
    assert result["complete"] and all(0 <= v <= 100 for v in result["val_top1"].values())
    ckpt = load_checkpoint(tmp_path / "gpu.pt")  # a GPU checkpoint loads on the CPU
    assert ckpt.settings.accelerator == "cuda" and next(ckpt.model().parameters()).device.type == "cpu"
    cpu = evaluate_subnet(ckpt.model(), ckpt.space.largest(), ckpt.data(), seed=2)
    gpu = evaluate_subnet(ckpt.model().cuda(), ckpt.space.largest(), ckpt.data(), seed=2, precision="bf16")
    assert abs(cpu - gpu) <= 2 * 100 / 16  # bf16 may flip an image or two of 16
