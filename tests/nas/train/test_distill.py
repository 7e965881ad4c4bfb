"""In-place distillation by adaptive alpha-divergence, and bounded sampling of random subnets."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import supernet
from nas.errors import BadInput
from nas.train import Processes, Trainer, TrainSettings, train
from nas.train.distill import adaptive_alpha_loss, alpha_divergence, sample_bounded

P = torch.tensor([[0.5, 0.5]])
Q = torch.tensor([[0.9, 0.1]])


def test_alpha_divergence_against_hand_computed_values():
    # a = -1: (sum p^-1 q^2 - 1) / 2 = (2 * (0.81 + 0.01) - 1) / 2
    assert alpha_divergence(P, Q.log(), -1.0).item() == pytest.approx(0.32, abs=1e-6)
    kl = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # KL(p || q)
    reverse = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # KL(q || p)
    assert alpha_divergence(P, Q.log(), 1.0).item() == pytest.approx(kl, abs=1e-6)
    assert alpha_divergence(P, Q.log(), 0.0).item() == pytest.approx(reverse, abs=1e-6)
    # continuous at the two KL limits, zero at q = p
    assert alpha_divergence(P, Q.log(), 1.0 - 1e-3).item() == pytest.approx(kl, rel=2e-3)
    assert alpha_divergence(P, Q.log(), 1e-3).item() == pytest.approx(reverse, rel=2e-3)
    assert alpha_divergence(P, P.log(), -1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_adaptive_loss_is_the_larger_divergence_with_its_exact_gradient_when_unclipped():
    torch.manual_seed(0)
    logits = torch.randn(6, 5, requires_grad=True)
    teacher = F.softmax(torch.randn(6, 5) * 2, dim=1)
    loss = adaptive_alpha_loss(logits, teacher, clip=1e9)
    log_q = F.log_softmax(logits, dim=1)
    per_alpha = torch.stack([alpha_divergence(teacher, log_q, a) for a in (-1.0, 1.0)])
    expected = per_alpha.max(dim=0).values.mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    (grad,) = torch.autograd.grad(loss, logits)
    (exact,) = torch.autograd.grad(expected, logits)
    assert torch.allclose(grad, exact, atol=1e-6)


def test_the_positive_alpha_is_not_clipped_it_is_the_kl_gradient():
    logits = torch.tensor([[2.3, -2.3]], requires_grad=True)  # q ~ (0.99, 0.01) against p = (0.5, 0.5): alpha 1 wins
    loss = adaptive_alpha_loss(logits, P)  # the default clip of 5
    (grad,) = torch.autograd.grad(loss, logits)
    (kl,) = torch.autograd.grad(F.kl_div(F.log_softmax(logits, dim=1), P, reduction="batchmean"), logits)
    assert torch.allclose(grad, kl, atol=1e-6)  # p_i / q_i = 50 on the second class, unclipped


def test_clipping_bounds_the_importance_weights_not_the_value():
    logits = torch.tensor([[8.0, -8.0]], requires_grad=True)  # q ~ (1, 1e-7): q/p huge where p is small
    teacher = torch.tensor([[0.02, 0.98]])
    clipped = adaptive_alpha_loss(logits, teacher, clip=5.0)
    free = adaptive_alpha_loss(logits, teacher, clip=1e9)
    assert clipped.item() == pytest.approx(free.item())  # the same divergence is reported
    (g_clipped,) = torch.autograd.grad(clipped, logits)
    (g_free,) = torch.autograd.grad(free, logits)
    assert g_clipped.abs().max() < g_free.abs().max() / 5 and torch.isfinite(g_clipped).all()
    with pytest.raises(ValueError):
        adaptive_alpha_loss(logits, teacher, alpha_low=0.5)


def test_bounded_sampling_keeps_consecutive_random_subnets_within_the_ratio():
    trainer = Trainer(
        TrainSettings.resolve({"data": "synthetic:train=32,val=8,classes=4", "batch_size": 8, "sample_gap": 1.3}),
        Path("unused.pt"),
        Processes(),
    )
    macs = lambda arch: float(supernet.count(arch).macs)  # noqa: E731
    chain = []
    for step in range(12):
        archs = trainer.archs(step)
        chain += [macs(a) for a in archs[2:]]
        trainer.previous_macs = macs(archs[-1])
    ratios = [max(a, b) / min(a, b) for a, b in zip(chain, chain[1:])]
    assert max(ratios) <= 1.3 + 1e-9 and len(set(chain)) > 3  # bounded, yet moving
    free = [macs(trainer.space.sample(random.Random(s))) for s in range(24)]
    assert max(max(a, b) / min(a, b) for a, b in zip(free, free[1:])) > 1.3  # the bound is not vacuous
    rng = random.Random(0)
    assert sample_bounded(trainer.space, rng, None, 1.3, macs) == trainer.space.sample(random.Random(0))


def test_alpha_distillation_and_gap_train_resume_exactly_and_are_recorded(tmp_path):
    options = {"data": "synthetic:train=64,val=16,classes=4", "batch_size": 16, "epochs": 2, "seed": 1}
    options.update(distill="alpha", sample_gap=1.5)
    full = train(dict(options), tmp_path / "full.pt")
    train(dict(options, max_steps=5), tmp_path / "parts.pt")
    parts = train(dict(options), tmp_path / "parts.pt", resume=True)
    assert full["steps"] == parts["steps"] == 8
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "parts.pt", weights_only=True)
    assert a["settings"]["distill"] == "alpha" and a["settings"]["sample_gap"] == 1.5
    assert a["previous_macs"] == b["previous_macs"] and a["previous_macs"] > 0
    for key, value in a["model"].items():
        assert torch.allclose(value, b["model"][key], atol=1e-6), key
    train(dict(options, distill="kl", sample_gap=None), tmp_path / "kl.pt")
    c = torch.load(tmp_path / "kl.pt", weights_only=True)
    assert any(not torch.equal(a["model"][k], c["model"][k]) for k in a["model"])  # the levers change the training


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"distill": "js"}, "--distill js"),
        ({"sample_gap": 1.0}, "--sample-gap 1.0"),
        ({"sample_gap": True}, "--sample-gap"),
        ({"distill": "alpha", "arch": {"space": "efficientformerv2-tiny"}}, "single architecture"),
    ],
)
def test_bad_distillation_settings_are_bad_input(options, needle):
    with pytest.raises(BadInput, match=needle):
        TrainSettings.resolve({"data": "synthetic", **options})
