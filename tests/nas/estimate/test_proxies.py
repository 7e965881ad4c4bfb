"""Accuracy estimators: the NASWOT kernel and synflow against hand computations, the proxies on the
shared supernet (same numbers as the active supernet, all mixers, odd grids), determinism, bad names."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import search_spaces
import supernet
from nas.errors import BadInput
from nas.estimate import DEFAULT_PROXY, PROXIES, Estimator, ProxyEstimator, make_estimator
from nas.estimate.proxies import (
    _CodeKernel,
    _depthwise,
    _Float64Depthwise,
    naswot_kernel,
    naswot_score,
    proxy_network,
    proxy_resolution,
    synflow,
)

TINY = search_spaces.load("efficientformerv2-tiny")
TINY_ARCHS = [TINY.sample(random.Random(i)) for i in range(6)]


@pytest.fixture(scope="module")
def naswot():
    return make_estimator("proxy", TINY, proxy="naswot")


@pytest.fixture(scope="module")
def synflow_est():
    return make_estimator("proxy", TINY, proxy="synflow")


# ---- NASWOT kernel ------------------------------------------------------------------------------------
def numpy_kernel(codes: list[np.ndarray]) -> np.ndarray:
    c = np.concatenate([x.reshape(len(x), -1) for x in codes], axis=1).astype(np.float64)
    return c @ c.T + (1 - c) @ (1 - c).T


def test_naswot_kernel_counts_agreeing_units():
    # three samples, two units: K[i, j] = units where i and j agree
    k = naswot_kernel([torch.tensor([[1, 0], [0, 1], [1, 1]])])
    assert k.dtype == torch.float64
    assert k.tolist() == [[2, 0, 1], [0, 2, 1], [1, 1, 2]]
    assert naswot_score(k) == pytest.approx(np.log(4.0))  # det = 2*(4-1) - 0 + 1*(0-2) = 4


def test_naswot_kernel_and_score_match_numpy():
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 2, size=(6, 3, 4, 5)), rng.integers(0, 2, size=(6, 40)), rng.random((6, 2, 7)) > 0.5]
    k = naswot_kernel([torch.from_numpy(c) for c in codes])
    ref = numpy_kernel(codes)
    assert np.array_equal(k.numpy(), ref)
    assert naswot_score(k) == pytest.approx(np.linalg.slogdet(ref)[1], rel=1e-12)
    # identical samples make K singular
    same = np.repeat(codes[1][:1], 3, axis=0)
    assert naswot_score(naswot_kernel([torch.from_numpy(same)])) == float("-inf")


class TwoActivations(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.act = nn.Linear(5, 8), nn.Linear(8, 6), nn.ReLU()

    def forward(self, x):
        self.pre = [self.a(x)]
        h = F.gelu(self.pre[0])
        self.pre.append(self.b(h))
        return self.act(self.pre[1])  # nn.ReLU calls F.relu


def test_code_kernel_sees_every_activation_once():
    torch.manual_seed(0)
    model, x = TwoActivations(), torch.randn(7, 5)
    with torch.no_grad(), _CodeKernel() as mode:
        model(x)
    assert mode.activations == 2
    assert torch.equal(mode.kernel, naswot_kernel([p > 0 for p in model.pre]))


# ---- synflow ------------------------------------------------------------------------------------------
def test_synflow_of_a_tiny_linear_model_by_hand():
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False))
    w1 = torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]])
    w2 = torch.tensor([[2.0, -1.0]])
    with torch.no_grad():
        model[0].weight.copy_(w1)
        model[1].weight.copy_(w2)
    # R = |w2| |w1| 1 = 2*6 + 1*2.5 = 14.5; dR/d|w2_j| = (|w1| 1)_j, dR/d|w1_jk| = |w2_j|:
    # sum |w2 * g2| = 2*6 + 1*2.5 = 14.5, sum |w1 * g1| = 2*(1+2+3) + 1*(0.5+1+1) = 14.5
    assert synflow(model, (1, 3)) == pytest.approx(29.0, rel=1e-15)
    # the model is untouched: signed float32 weights, training mode kept
    assert torch.equal(model[0].weight, w1) and model[0].weight.dtype == torch.float32
    assert model.training


def test_synflow_with_bias_and_batch():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-3.0, 4.0]]))
        model.bias.fill_(-5.0)
    # R = 2 * (3 + 4 + 5) over a batch of two ones; the scores: |w| * 2 summed = 14, |b| * 2 = 10
    assert synflow(model, (2, 2)) == pytest.approx(24.0)


@pytest.mark.parametrize(("size", "stride"), [(7, 1), (7, 2), (8, 2)])
def test_float64_depthwise_rewrite_matches_conv2d(size, stride):
    gen = torch.Generator().manual_seed(size + stride)
    x = torch.randn(2, 6, size, size, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(6, 1, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, generator=gen, requires_grad=True)
    args = (x, w, b, (stride, stride), (1, 1), (1, 1))
    ref, out = F.conv2d(*args, 6), _depthwise(*args)
    assert out.shape == ref.shape and torch.allclose(out, ref, rtol=1e-12, atol=1e-12)
    for g, h in zip(torch.autograd.grad(ref.sum(), (x, w, b)), torch.autograd.grad(out.sum(), (x, w, b))):
        assert torch.allclose(g, h, rtol=1e-12, atol=1e-12)
    conv = nn.Conv2d(6, 6, 3, stride, 1, groups=6).double()
    with _Float64Depthwise():  # reached through nn.Conv2d too
        y = conv(x)
    assert "Convolution" not in type(y.grad_fn).__name__
    assert torch.allclose(y, F.conv2d(x, conv.weight, conv.bias, stride, 1, 1, 6), rtol=1e-12, atol=1e-12)


# ---- the shared network ---------------------------------------------------------------------------------
def test_proxy_resolution_keeps_resolutions_apart():
    assert [proxy_resolution(r) for r in (192, 224, 256)] == [48, 56, 64]
    assert proxy_resolution(64) == 32 and proxy_resolution(224, 8) == 32


@pytest.mark.parametrize("side", [48, 56])
def test_shared_net_runs_the_active_supernets_numbers(side):
    """Plain layers on slices of the supernet's tensors compute what the active supernet computes, for
    every mixer, at proxy resolutions whose stage grids are odd (48: 12, 6, 3, 2; 56: 14, 7, 4, 2)."""
    net = proxy_network(TINY, 0, absolute=False, training=True)
    archs = [TINY.smallest(), TINY.largest()]
    for mixer in ("separable", "additive"):
        archs.append(
            search_spaces.Arch.from_dict(
                {**TINY.largest().to_dict(), "mixers": [["none"] * 2, ["none"] * 2, ["mhsa"] * 3, [mixer] * 3]}
            )
        )
    assert {m for a in archs for stage in a.mixers for m in stage} == {"none", "mhsa", "separable", "additive"}
    _assert_shared_layers_agree(net, archs, side)


@pytest.mark.parametrize("side", [48, 64])
def test_shared_net_runs_sepvit(side):
    """SepViT on slices, on maps smaller than the architecture's (7x7 windows): at 48 px stage 1's 12x12
    map is padded to two windows a side and stage 2's 6x6 map to one window (no PSA); at 64 px 16x16
    makes three windows a side and 8x8 two."""
    space = search_spaces.load("efficientformerv2")
    net = proxy_network(space, 0, absolute=False, training=True)
    base = space.preset("s0_sepvit").to_dict()
    archs = [space.preset("s0_sepvit")]
    for width in (16, 48):
        mixers = [["sepvit"] * 2, ["sepvit", "none"], ["none", "sepvit"] * 3, ["none", "none", "mhsa", "mhsa"]]
        archs.append(search_spaces.Arch.from_dict({**base, "widths": [width, 32, 64, 128], "mixers": mixers}))
    _assert_shared_layers_agree(net, archs, side)


def _assert_shared_layers_agree(net, archs, side):
    x = torch.randn(4, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for arch in archs:
            net.set_active(arch)
            y = x
            for layer in net.shared_layers(arch):
                y = layer(y)
            assert torch.equal(y[0], net(x)[0])
    # train-mode BN updates the shared running statistics in place; the layers' slices alias them
    layer = net.shared_layers(archs[0])[0]
    assert layer.conv1.bn.running_mean.data_ptr() == net.slots["stem"]["stem"].conv1.bn.running_mean.data_ptr()


def test_proxy_network_layer_scales_are_one():
    net = proxy_network(TINY, 0, absolute=True, training=False)
    scales = [p for name, p in net.named_parameters() if name.endswith("layer_scale")]
    assert scales and all(bool((p == 1).all()) for p in scales)
    assert all(p.dtype == torch.float64 and bool((p >= 0).all()) for p in net.parameters())


# ---- estimators --------------------------------------------------------------------------------------
def test_estimators_are_deterministic_and_leave_the_global_rng_alone(naswot, synflow_est):
    state = torch.random.get_rng_state()
    for est in (naswot, synflow_est):
        first = est.estimate(TINY_ARCHS)
        assert all(np.isfinite(first)) and len(set(first)) == len(first)
        assert est.estimate(TINY_ARCHS[::-1]) == first[::-1]
        fresh = make_estimator("proxy", TINY, proxy=est.proxy, seed=0)
        assert fresh.estimate(TINY_ARCHS[3:] + TINY_ARCHS[:3]) == first[3:] + first[:3]  # bit-identical, any order
        other = make_estimator("proxy", TINY, proxy=est.proxy, seed=1).estimate(TINY_ARCHS[:2])
        assert other != first[:2]
        # a pickled estimator keeps its scores and rebuilds its network when it needs it
        copy = pickle.loads(pickle.dumps(est))
        assert copy._net is None and copy.estimate(TINY_ARCHS) == first
    assert torch.equal(torch.random.get_rng_state(), state)


def test_scores_do_not_depend_on_the_callers_thread_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = make_estimator("proxy", TINY, proxy="naswot").estimate(TINY_ARCHS[:3])
        assert torch.get_num_threads() == 2  # restored
        torch.set_num_threads(1)
        assert make_estimator("proxy", TINY, proxy="naswot").estimate(TINY_ARCHS[:3]) == two
    finally:
        torch.set_num_threads(threads)


def test_bigger_model_scores_higher_and_reference(naswot, synflow_est):
    for est in (naswot, synflow_est):
        small, large = est.estimate([TINY.smallest(), TINY.largest()])
        assert large > small
        assert est.reference() == (small, large - small)
        assert all(small < s < large for s in est.estimate(TINY_ARCHS))


def test_params_proxy_is_the_exact_parameter_count():
    est = make_estimator("proxy", TINY, proxy="params")
    archs = [TINY.sample(random.Random(100 + i)) for i in range(20)]
    scores = est.estimate(archs)
    params = [supernet.count(a).params for a in archs]
    assert scores == [p / 1e6 for p in params]
    assert np.array_equal(np.argsort(scores, kind="stable"), np.argsort(params, kind="stable"))
    small, large = supernet.count(TINY.smallest()).params / 1e6, supernet.count(TINY.largest()).params / 1e6
    assert est.reference() == (small, large - small)


def test_make_estimator_names_and_defaults():
    est = make_estimator("proxy", TINY)
    assert isinstance(est, ProxyEstimator) and isinstance(est, Estimator)
    assert DEFAULT_PROXY in PROXIES and est.name == f"proxy:{DEFAULT_PROXY}"
    assert make_estimator("proxy", "efficientformerv2-tiny", proxy="synflow").name == "proxy:synflow"
    assert est.estimate([]) == []


@pytest.mark.parametrize(
    ("kind", "proxy", "words"),
    [
        ("proxy", "grad_norm", ["'grad_norm'", "naswot", "synflow", "params"]),
        ("oracle", None, ["'oracle'", "proxy", "supernet", "predictor"]),
        ("supernet", None, ["--accuracy supernet", "--supernet CKPT", "nas train"]),
        ("predictor", None, ["--accuracy predictor", "--supernet CKPT", "nas train"]),
    ],
)
def test_bad_names_are_one_line_bad_input(kind, proxy, words):
    with pytest.raises(BadInput) as info:
        make_estimator(kind, TINY, proxy=proxy)
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words)


def test_architecture_of_another_space_is_refused(naswot):
    other = search_spaces.load("efficientformerv2").preset("s0")
    with pytest.raises(search_spaces.SpaceError):
        naswot.estimate([other])
