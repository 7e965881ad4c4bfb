"""Proxies as a library (any nn.Module and a batch) against hand computations, the zico and real-data
estimators of the search, and the rank statistics the accuracy study reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import search_spaces
from nas.errors import BadInput
from nas.estimate import (
    ProxyEstimator,
    default_by_evidence,
    make_estimator,
    naswot,
    rank_agreement,
    tau_difference,
    top_k_recall,
    zico,
)

TINY = search_spaces.load("efficientformerv2-tiny")


def _identity_relu() -> nn.Module:
    linear = nn.Linear(2, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(2))
        linear.bias.zero_()
    return nn.Sequential(linear, nn.ReLU())


def test_naswot_of_a_module_is_the_hand_computed_logdet():
    # codes of x1=(1,-1), x2=(-1,1), x3=(1,1) under identity + ReLU: (1,0), (0,1), (1,1); agreements
    # K = [[2,0,1],[0,2,1],[1,1,2]], det 2*(4-1) - 0 + 1*(0-2) = 4
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    assert naswot(_identity_relu(), x) == pytest.approx(math.log(4.0), abs=1e-12)


def test_zico_of_a_module_is_the_hand_computed_value():
    # logits W x with W = 0 (2 classes): softmax (1/2, 1/2); dL/dW = (p - onehot(y)) x. Part one
    # x=1, y=0: (-1/2, 1/2); part two x=2, y=1: (1, -1). Each entry: mean |g| 3/4, std 3/4, ratio 1;
    # the one weight tensor sums to 2: zico = log 2
    net = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        net.weight.zero_()
    assert zico(net, torch.tensor([[1.0], [2.0]]), torch.tensor([0, 1])) == pytest.approx(math.log(2.0), abs=1e-12)


def test_library_proxies_leave_the_module_unchanged():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 3
    assert math.isfinite(naswot(net, x)) and math.isfinite(zico(net, x, y))
    assert not net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


def test_naswot_of_a_module_without_activations_is_bad_input():
    with pytest.raises(BadInput, match="no GELU or ReLU"):
        naswot(nn.Linear(2, 2), torch.randn(3, 2))


def test_zico_and_real_data_estimators_on_the_supernet():
    archs = [TINY.smallest(), TINY.largest()]
    zico_noise = ProxyEstimator(TINY, "zico", seed=0)
    scores = zico_noise.estimate(archs[:2])
    assert all(math.isfinite(s) for s in scores) and scores[1] > scores[0]  # more weight tensors, more terms
    assert ProxyEstimator(TINY, "zico", seed=0).estimate(archs[:2]) == scores  # deterministic
    real = make_estimator("proxy", TINY, proxy="naswot", data="synthetic:train=64,val=16,classes=4,size=16")
    assert real.name == "proxy:naswot@synthetic:train=64,val=16,classes=4,size=16"
    noise = make_estimator("proxy", TINY, proxy="naswot")
    assert real.estimate(archs[:1]) != noise.estimate(archs[:1])
    images, labels, _ = real._real_batch()
    assert images.shape[0] == 16 and torch.bincount(labels).tolist() == [4, 4, 4, 4]  # class-balanced
    prepared = make_estimator("proxy", TINY, proxy="naswot", data="synthetic:train=64,val=16,classes=4,size=16")
    prepared.prepare(archs)  # builds the network and batches only: the scores are those of a cold estimator
    assert prepared._scores == {} and prepared.estimate(archs) == real.estimate(archs)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(proxy="naswot", data="/no/such/dir"), "no such data set"),
        (dict(proxy="synflow", data="synthetic"), "not by synflow"),
        (dict(proxy="params", data="synthetic"), "not by params"),
    ],
)
def test_bad_proxy_data_is_one_line_bad_input(kwargs, needle):
    with pytest.raises(BadInput) as info:
        make_estimator("proxy", TINY, **kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_search_with_a_bad_data_path_exits_2(cli, tmp_path, one_line_error):
    code, out, err = cli(
        "search",
        "--budget",
        "params=3M",
        "--space",
        "efficientformerv2-tiny",
        "--data",
        tmp_path / "nope",
        "--out",
        tmp_path / "run",
    )
    assert code == 2
    one_line_error(code, out, err, "no such data set")
    assert not (tmp_path / "run").exists()


def test_rank_agreement_on_known_cases():
    perfect = rank_agreement([1, 2, 3, 4, 5, 6, 7, 8], [10, 20, 30, 40, 50, 60, 70, 80])
    assert (perfect.kendall_tau, perfect.kendall_low, perfect.kendall_high) == pytest.approx((1.0, 1.0, 1.0))
    assert perfect.spearman == pytest.approx(1.0) and perfect.top_recall == 1.0 and perfect.top_k == 2
    assert perfect.kendall_p < 0.001
    reversed_ = rank_agreement([8, 7, 6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6, 7, 8])
    assert (reversed_.kendall_tau, reversed_.kendall_high, reversed_.top_recall) == pytest.approx((-1.0, -1.0, 0.0))
    # one swapped pair of four: 5 concordant, 1 discordant pairs: tau (5 - 1) / 6
    one_swap = rank_agreement([1, 2, 3, 4], [1, 2, 4, 3])
    assert one_swap.kendall_tau == pytest.approx(4 / 6) and one_swap.spearman == pytest.approx(0.8)
    assert one_swap.kendall_low <= one_swap.kendall_tau <= one_swap.kendall_high
    assert rank_agreement([1, 2, 3, 4], [1, 2, 4, 3]) == one_swap  # seeded: the same interval again


def test_bootstrap_interval_of_a_weak_correlation_covers_its_sampling_spread():
    # 40 draws with true Spearman ~0.5: the interval must hold the estimate, exclude 1 and be about
    # as wide as the textbook standard error (~0.12 for rho) puts it: 0.3 to 0.7 wide
    rng = np.random.default_rng(1)
    truth = rng.normal(size=40)
    estimate = truth + rng.normal(scale=1.5, size=40)
    result = rank_agreement(estimate, truth, seed=0)
    assert result.spearman_low < result.spearman < result.spearman_high < 0.95
    assert 0.3 < result.spearman_high - result.spearman_low < 0.7
    assert result.kendall_p < 0.05


def test_paired_tau_difference_separates_what_overlapping_intervals_cannot():
    # a and b share most of their error; b adds its own. Their separate intervals overlap (a's lower
    # bound below b's upper), yet on the same resampled architectures a wins every time it matters.
    rng = np.random.default_rng(0)
    truth = rng.normal(size=24)
    a = truth + rng.normal(scale=0.6, size=24)
    b = a + rng.normal(scale=1.0, size=24)
    assert rank_agreement(a, truth).kendall_low < rank_agreement(b, truth).kendall_high
    diff = tau_difference(a, b, truth)
    assert diff.difference == pytest.approx(rank_agreement(a, truth).kendall_tau - rank_agreement(b, truth).kendall_tau)
    assert diff.significant and 0 < diff.low < diff.difference < diff.high
    same = tau_difference(a, a, truth)
    assert (same.difference, same.low, same.high, same.significant) == (0.0, 0.0, 0.0, False)
    with pytest.raises(ValueError, match="equal-length"):
        tau_difference(a, b[:-1], truth)


def test_default_by_evidence_needs_a_significant_win_over_parameter_count():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=24)
    params = truth + rng.normal(scale=0.6, size=24)
    noisy = params + rng.normal(scale=1.0, size=24)
    exact = truth * 2.0
    name, why = default_by_evidence({"proxy:params": params, "proxy:noisy": noisy}, truth)
    assert name == "proxy:params" and "no estimator beats proxy:params" in why
    name, why = default_by_evidence({"proxy:params": noisy, "proxy:better": params, "proxy:exact": exact}, truth)
    assert name == "proxy:exact" and why.startswith("tau 1.000")  # both win; the higher tau is picked
    with pytest.raises(ValueError, match="baseline"):
        default_by_evidence({"proxy:noisy": noisy}, truth)


def test_top_k_recall_by_hand():
    assert top_k_recall([5, 4, 3, 2, 1, 0], [5, 0, 4, 1, 3, 2], 2) == 0.5  # estimate's best {0,1}; truth's {0,2}
    with pytest.raises(ValueError):
        top_k_recall([1, 2], [1, 2], 3)


def test_parameter_count_as_accuracy_is_not_also_an_objective():
    from nas.search.settings import SearchSettings

    assert SearchSettings(budget="params=3M").objectives == ("accuracy", "latency", "params")
    assert SearchSettings(budget="params=3M", proxy="params").objectives == ("accuracy", "latency")
    assert SearchSettings(budget="params=3M", proxy="macs").objectives == ("accuracy", "latency", "params")
    with pytest.raises(BadInput) as info:
        SearchSettings(budget="params=3M", proxy="params", objectives="accuracy,latency,params")
    assert "every architecture would be Pareto-optimal" in str(info.value) and "\n" not in str(info.value)
