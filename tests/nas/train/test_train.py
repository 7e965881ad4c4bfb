"""nas train: sandwich steps, exact resume, checkpoints, single-architecture runs, torchrun, evaluation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import search_spaces
import supernet
from nas.cli import main
from nas.errors import BadInput
from nas.train import (
    Processes,
    Trainer,
    TrainingInterrupted,
    TrainSettings,
    calibration_batches,
    correct_predictions,
    evaluate,
    evaluate_subnet,
    load_checkpoint,
    recalibrate_bn,
    train,
)
from nas.train.data import synthetic_data

DATA = "synthetic:train=64,val=32,classes=4"
OPTIONS = {"data": DATA, "batch_size": 16, "epochs": 2, "drop_path": 0.1, "seed": 3}  # 4 steps per epoch


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A supernet trained for 2 epochs (8 steps) without interruption."""
    out = tmp_path_factory.mktemp("train") / "full.pt"
    train(dict(OPTIONS), out)
    return out


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_interrupted_and_resumed_run_equals_uninterrupted(trained, tmp_path):
    out = tmp_path / "resumed.pt"
    first = train(dict(OPTIONS, max_steps=3), out)  # stops inside epoch 1
    assert (first["steps"], first["complete"]) == (3, False)
    assert train(dict(OPTIONS, max_steps=6), out, resume=True)["steps"] == 6  # stops inside epoch 2
    last = train(dict(OPTIONS), out, resume=True)
    assert (last["steps"], last["epochs"], last["complete"]) == (8, 2, True)
    a, b = _state(trained), _state(out)
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]) or (value - b["model"][key]).abs().max() <= 1e-6, key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.allclose(sa["exp_avg"], sb["exp_avg"], atol=1e-6)
    assert [h["val_top1"] for h in a["history"]] == [h["val_top1"] for h in b["history"]]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_an_interrupted_epoch_records_its_whole_training_time(tmp_path, monkeypatch):
    """The accuracy study reports each training's cost from the epochs' seconds: an epoch killed right
    after a periodic checkpoint and resumed must count the part before the kill too."""
    from types import SimpleNamespace

    import nas.train.trainer as trainer_module

    clock = {"now": 0.0, "step": 1000.0}  # 1000 s per reading before the kill, 1 s after

    def perf_counter() -> float:
        clock["now"] += clock["step"]
        return clock["now"]

    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(perf_counter=perf_counter))
    real_step, steps = trainer_module.Trainer.train_step, []

    def killed_at_the_third_step(self, x, y):
        steps.append(1)
        if len(steps) == 3:
            raise KeyboardInterrupt  # a kill after the checkpoint of step 2
        return real_step(self, x, y)

    out = tmp_path / "timed.pt"
    monkeypatch.setattr(trainer_module.Trainer, "train_step", killed_at_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        train(dict(OPTIONS, epochs=1, save_every=1), out)
    state = _state(out)
    assert (state["step"], state["complete"]) == (2, False) and state["epoch_seconds"] >= 1000
    monkeypatch.setattr(trainer_module.Trainer, "train_step", real_step)
    clock["step"] = 1.0
    train(dict(OPTIONS, epochs=1), out, resume=True)
    state = _state(out)
    assert state["complete"] and state["epoch_seconds"] == 0.0
    assert state["history"][0]["seconds"] >= 1000  # the resumed part alone is a few seconds of this clock


def _signal_at_step(monkeypatch, step: int, number: int = signal.SIGINT) -> None:
    """Send this process `number` while the training's `step`-th step (counted from 1) runs."""
    import nas.train.trainer as trainer_module

    real_step, steps = trainer_module.Trainer.train_step, []

    def signalled(self, x, y):
        steps.append(1)
        if len(steps) == step:
            os.kill(os.getpid(), number)  # Ctrl-C or kill in the middle of the step
        return real_step(self, x, y)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", signalled)


def test_a_signal_saves_the_step_under_way_and_the_resumed_run_equals_the_uninterrupted(trained, tmp_path, monkeypatch):
    """Without the handler a kill loses every step since the last periodic checkpoint (200 by default);
    with it, Ctrl-C finishes and saves step 3 (of 8), and resuming ends where the uninterrupted run does."""
    out, before = tmp_path / "signalled.pt", signal.getsignal(signal.SIGINT)
    _signal_at_step(monkeypatch, 3)
    with pytest.raises(TrainingInterrupted, match=r"step 3 saved to .*signalled\.pt"):
        train(dict(OPTIONS), out)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is the training's only
    state = _state(out)
    assert (state["step"], state["epoch"], state["batch"], state["complete"]) == (3, 0, 3, False)
    monkeypatch.undo()
    assert train(dict(OPTIONS), out, resume=True)["complete"]
    a, b = _state(trained), _state(out)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]) or (value - b["model"][key]).abs().max() <= 1e-6, key
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_a_signal_in_an_epochs_last_step_stops_after_the_epoch(tmp_path, monkeypatch):
    """SIGTERM (kill, a batch scheduler) in step 4, the last of epoch 1: the epoch is closed (validated,
    recorded) before stopping, so the checkpoint is an ordinary end-of-epoch one."""
    out = tmp_path / "term.pt"
    _signal_at_step(monkeypatch, 4, signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="step 4 saved"):
        train(dict(OPTIONS), out)
    state = _state(out)
    assert (state["step"], state["epoch"], state["batch"]) == (4, 1, 0) and len(state["history"]) == 1


def test_a_second_signal_interrupts_at_once():
    from nas.train.interrupt import StopRequest

    before = signal.getsignal(signal.SIGTERM)  # another library's handler, if an earlier test installed one
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


def test_nas_train_interrupted_says_what_it_saved_and_how_to_continue(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli.pt"
    _signal_at_step(monkeypatch, 2)
    assert main(["train", "--data", DATA, "--out", str(out), "--epochs", "1", "--batch-size", "16"]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"nas: interrupted (step 2 saved to {out}); continue with: "
        f"nas train --data {DATA} --out {out} --epochs 1 --batch-size 16 --resume"
    )
    monkeypatch.undo()
    assert main(["train", "--data", DATA, "--out", str(out), "--epochs", "1", "--batch-size", "16", "--resume"]) == 0
    assert _state(out)["complete"]


def test_checkpoint_holds_what_it_should(trained):
    state = _state(trained)  # weights_only: plain data only
    assert state["format"] == "nas-train" and state["kind"] == "supernet" and state["complete"]
    assert (state["step"], state["epoch"], state["batch"]) == (8, 2, 0)
    assert state["space"]["ref"] == "efficientformerv2-tiny?num_classes=4&resolutions=32"
    assert state["space"]["base_ref"] == "efficientformerv2-tiny" and "stages:" in state["space"]["yaml"]
    assert {"python", "numpy", "torch"} <= set(state["rng"])
    assert state["settings"]["data"] == DATA and state["settings"]["drop_path"] == 0.1 and state["settings"]["lr"] == 1e-3
    assert state["scheduler"]["last_epoch"] == 8 and state["optimizer"]["state"]
    assert state["data"]["classes"] == ["class0", "class1", "class2", "class3"]
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    assert set(state["history"][-1]["val_top1"]) == {"largest", "smallest"}
    ckpt = load_checkpoint(trained)
    net = ckpt.model()
    assert isinstance(net, supernet.SuperNet) and ckpt.space.num_classes == 4 and ckpt.resolution == 32
    arch = ckpt.adapt(search_spaces.load("efficientformerv2-tiny").smallest())  # a 224-px, 1000-class arch of the base space
    assert arch.resolution == 32 and arch.search_space is ckpt.space
    top1 = evaluate_subnet(net, arch, ckpt.data(), calib_batches=ckpt.settings.calib_batches, seed=ckpt.settings.seed)
    assert round(top1, 3) == state["history"][-1]["val_top1"]["smallest"]


def test_sandwich_step_runs_largest_smallest_and_two_random_subnets():
    trainer = Trainer(TrainSettings.resolve(dict(OPTIONS)), Path("unused.pt"), Processes())
    space = trainer.space
    archs = trainer.archs(5)
    assert archs[:2] == [space.largest(), space.smallest()] and len(archs) == 4
    assert archs == trainer.archs(5) and archs[2:] != trainer.archs(6)[2:]  # drawn from (seed, step)
    seen = []
    view = trainer.model.view
    trainer.model.view = lambda arch: (seen.append(arch), view(arch))[1]
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 4, (16,))
    trainer.step = 5
    trainer.train_step(x, y)
    assert seen == archs and trainer.step == 6
    used = {(spec.name, spec.kind) for arch in archs for spec in arch.layers()}
    for slot, variants in trainer.model.slots.items():
        for kind, layer in variants.items():
            has_grad = any(p.grad is not None for p in layer.parameters())
            assert has_grad == ((slot, kind) in used), (slot, kind)


def test_recalibrate_and_evaluate():
    d = synthetic_data(train=64, val=32, classes=4)
    space = search_spaces.load("efficientformerv2-tiny").derive(resolutions=[32], num_classes=4)
    net = supernet.build(space)
    with pytest.raises(TypeError):
        recalibrate_bn(net, [])
    model = net.extract(space.smallest())
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    recalibrate_bn(model.eval(), calibration_batches(d, 32, batch_size=16, batches=2))
    assert not model.training and bn.running_mean.abs().sum() > 0 and bn.momentum == 0.1
    top1 = evaluate(model, [(torch.randn(8, 3, 32, 32), torch.zeros(8, dtype=torch.int64))])
    assert 0 <= top1 <= 100 and top1 * 8 / 100 == round(top1 * 8 / 100)


def test_correct_predictions_are_per_image_in_order_and_give_the_top1():
    class FirstPixelSign(torch.nn.Module):  # class 1 when the first pixel is positive
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            v = x[:, 0, 0, 0] * self.scale
            return torch.stack([-v, v], dim=1)

    x = torch.zeros(6, 3, 4, 4)
    x[:, 0, 0, 0] = torch.tensor([1.0, -1.0, 2.0, -2.0, 3.0, -3.0])
    labels = torch.tensor([1, 1, 1, 0, 0, 0])
    batches = [(x[:4], labels[:4]), (x[4:], labels[4:])]
    model = FirstPixelSign().train()
    right = correct_predictions(model, batches)
    assert right.tolist() == [True, False, True, True, False, True] and model.training  # its mode given back
    assert evaluate(FirstPixelSign(), batches) == pytest.approx(100 * 4 / 6)
    for nothing in ([], [(x[:0], labels[:0])]):  # no batch, or only empty ones (a shard of too few images)
        with pytest.raises(BadInput, match="empty"):
            correct_predictions(FirstPixelSign(), nothing)


def test_drop_path_is_training_only_and_matches_the_extracted_subnet():
    space = search_spaces.load("efficientformerv2-tiny").derive(resolutions=[32], num_classes=4)
    net = supernet.build(space)
    net.set_drop_path(0.3)
    arch = space.sample(7)
    net.set_active(arch)
    model = net.extract(arch)
    assert 0 < max(getattr(m, "drop_path", 0) for m in model.layers) <= 0.3
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(net.eval()(x), model.eval()(x))
    outs = []
    for m in (net, model):
        torch.manual_seed(0)
        outs.append(m.train()(x)[0])
    assert torch.allclose(outs[0], outs[1])
    torch.manual_seed(1)
    assert not torch.allclose(net(x)[0], outs[0])  # other blocks dropped


def test_single_architecture_from_scratch_and_from_the_supernet(trained, tmp_path, capsys):
    arch = search_spaces.load("efficientformerv2-tiny").sample(11)
    arch_file = tmp_path / "arch.yaml"
    arch.save(arch_file)
    scratch, inherited = tmp_path / "scratch.pt", tmp_path / "inherited.pt"
    common = ["train", "--data", DATA, "--batch-size", "16", "--arch", str(arch_file), "--resolution", "32", "-q", "--json"]
    assert main(common + ["--out", str(scratch), "--max-steps", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "subnet" and result["steps"] == 1 and result["arch"]["widths"] == list(arch.widths)
    ckpt = load_checkpoint(scratch)
    assert isinstance(ckpt.model(), supernet.SubNet) and ckpt.arch.resolution == 32
    # from the supernet's weights: before any step the subnet holds exactly the extracted weights
    assert main(common[:-2] + ["--out", str(inherited), "--supernet", str(trained), "--max-steps", "0"]) == 0
    capsys.readouterr()
    expected = load_checkpoint(trained).model().extract(ckpt.arch).state_dict()
    got = load_checkpoint(inherited).state["model"]
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_cli_refuses_to_overwrite_or_change_a_run(trained, tmp_path, capsys):
    assert main(["train", "--data", DATA, "--out", str(trained)]) == 2
    assert "exists: pass --resume" in capsys.readouterr().err
    assert main(["train", "--data", DATA, "--out", str(trained), "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.5 differs from the checkpoint's 0.001" in err and err.count("\n") == 1
    assert main(["train", "--data", DATA, "--out", str(tmp_path / "x.pt"), "--resolution", "48"]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["train", "--data", DATA, "--out", str(tmp_path / "x.pt"), "--batch-size", "100"]) == 2
    assert "fewer than one batch" in capsys.readouterr().err
    assert TrainSettings().epochs == 1 and TrainSettings.resolve({"data": "fashion-mnist"}).space == "efficientformerv2-tiny"


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("memory_format", ["contiguous", "channels-last"])
def test_torchrun_two_processes(tmp_path, memory_format):
    """Two gloo processes step together, in either memory format (DDP's gradient buckets must accept
    channels-last weights, as NCCL's do on a GPU)."""
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "nas",
        "train",
        "--data",
        DATA,
        "--out",
        str(out),
        "--max-steps",
        "2",
        "--batch-size",
        "16",
        "--save-every",
        "1",
        "--device",
        "cpu",
        "--memory-format",
        memory_format,
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # rank 0 alone prints
    assert result["steps"] == 2 and not result["complete"]
    state = _state(out)  # saving checks that both processes hold the same weights
    assert state["step"] == 2 and state["batch"] == 2 and state["settings"]["memory_format"] == memory_format


def _stop_vote(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        procs = Processes(rank, 2, torch.device("cpu"))
        votes = [procs.any_true(rank == 1), procs.any_true(False)]  # a signal that reached rank 1 only
        Path(f"{out}.{rank}").write_text(json.dumps(votes))
    finally:
        dist.destroy_process_group()


def test_a_signal_to_one_process_stops_every_process_at_the_same_step(tmp_path):
    """torchrun's processes need not all receive the signal: each step they agree whether any did, so
    that none waits forever in the next step's all-reduce for one that stopped."""
    import torch.multiprocessing as mp

    mp.spawn(_stop_vote, args=(str(tmp_path / "store"), str(tmp_path / "votes")), nprocs=2)
    assert [json.loads((tmp_path / f"votes.{rank}").read_text()) for rank in (0, 1)] == [[True, False], [True, False]]


# ---- precision ---------------------------------------------------------------------------------------
def test_bf16_and_fp16_steps_stay_close_to_fp32():
    """The same sandwich step from the same weights: bf16 autocast within 2% of the fp32 loss and its
    weights moved as fp32's (fp32 master weights), fp16 with its gradient scaler finite; evaluation under
    bf16 autocast gives fp32's top-1 within 3 points."""
    x, y = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 4
    losses, weights, tops = {}, {}, {}
    for precision in ("fp32", "bf16", "fp16"):
        trainer = Trainer(TrainSettings.resolve({**OPTIONS, "precision": precision}), Path("unused.pt"), Processes())
        losses[precision] = trainer.train_step(x, y)
        weights[precision] = torch.cat([p.detach().flatten() for p in trainer.params])
        assert all(p.dtype == torch.float32 for p in trainer.params)
        assert (trainer.scaler is not None) == (precision == "fp16")
        tops[precision] = trainer.validate()["largest"]
    assert abs(losses["bf16"] - losses["fp32"]) <= 0.02 * losses["fp32"], losses
    assert torch.isfinite(torch.tensor(losses["fp16"]))
    moved32, moved16 = weights["fp32"], weights["bf16"]
    assert torch.nn.functional.cosine_similarity(moved32, moved16, dim=0) > 0.999
    assert abs(tops["bf16"] - tops["fp32"]) <= 3.0, tops


def test_precision_is_checked_recorded_and_may_change_on_resume(tmp_path, capsys):
    with pytest.raises(Exception, match="--precision fp8"):
        TrainSettings.resolve({**OPTIONS, "precision": "fp8"})
    out = tmp_path / "bf16.pt"
    code = main(
        [
            "train",
            "--data",
            DATA,
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--precision",
            "bf16",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0 and _state(out)["settings"]["precision"] == "bf16"
    capsys.readouterr()
    code = main(["train", "--data", DATA, "--resume", "--out", str(out), "--precision", "fp32", "--max-steps", "3", "--json"])
    assert code == 0 and _state(out)["settings"]["precision"] == "fp32" and _state(out)["step"] == 3
