"""The op-aware cost model: featurising any nn.Module, fitting known constants back, leave-one-family-out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from latency_lut import costmodel
from latency_lut.costmodel import FEATURES

COL = {name: i for i, name in enumerate(FEATURES)}
BENCH = Path(__file__).parents[2] / "bench"


class Block(nn.Module):
    """conv-BN-ReLU (fused: counted once), depthwise conv, then a two-head attention over the 4x4 grid."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU(inplace=True)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.qkv = nn.Linear(8, 24)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = self.dw(self.act(self.bn(self.conv(x))))
        t = x.flatten(2).transpose(1, 2)  # (1, 16, 8): a transpose the device must copy
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        a = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.drop(a @ v)


def test_features_of_a_hand_counted_module():
    row = costmodel.module_features(Block(), torch.zeros(1, 3, 4, 4))
    assert row[COL["dense_gmacs"]] * 1e9 == pytest.approx(16 * 8 * 27)  # out elements x (cin x 3 x 3)
    assert row[COL["depthwise_gmacs"]] * 1e9 == pytest.approx(16 * 8 * 9)
    assert row[COL["linear_gmacs"]] * 1e9 == pytest.approx(16 * 24 * 8)
    assert row[COL["attention_gmacs"]] * 1e9 == pytest.approx(16 * 16 * 8 + 16 * 8 * 16)  # q k^T and a v
    assert row[COL["weight_melem"]] * 1e6 == pytest.approx(8 * 27 + 8 * 9 + 24 * 8)
    assert row[COL["norm_melem"]] * 1e6 == pytest.approx(2 * 16 * 16)  # softmax reads and writes 16x16
    # conv, dw, transpose(x) , linear, transpose(k), matmul, softmax, matmul: BN and ReLU fused, dropout gone
    assert row[COL["ops"]] == 8
    assert row[COL["movement_melem"]] * 1e6 == pytest.approx(2 * 128 + 2 * 128)


@pytest.mark.parametrize("act", [nn.SiLU(), nn.Hardswish(), nn.Sigmoid(), nn.ReLU(), nn.GELU()])
def test_sigmoid_family_is_priced_even_where_it_fuses(act):
    # conv + activation: the activation fuses (no op, no element-wise traffic), but a sigmoid-family one
    # is still counted once per output element, so that SiLU networks pay for it
    row = costmodel.module_features(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), act), torch.zeros(1, 3, 16, 16))
    assert row[COL["ops"]] == 1 and row[COL["elementwise_melem"]] == 0
    sigmoid_family = isinstance(act, nn.SiLU | nn.Hardswish | nn.Sigmoid)
    assert row[COL["sigmoid_melem"]] * 1e6 == pytest.approx(8 * 16 * 16 if sigmoid_family else 0)
    # and unfused (no convolution before it): counted as an element-wise op as well
    alone = costmodel.module_features(act, torch.zeros(1, 8, 16, 16))
    assert alone[COL["elementwise_melem"]] * 1e6 == pytest.approx(2 * 8 * 16 * 16)
    assert alone[COL["sigmoid_melem"]] == row[COL["sigmoid_melem"]]


class ChannelsLast(nn.Module):
    """ConvNeXt's block body: to channels-last, per-position ops, back (or, with `between`, one op that is not)."""

    def __init__(self, between: nn.Module | None = None):
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(8), nn.Linear(8, 32), nn.Linear(32, 8)
        self.gamma = nn.Parameter(torch.ones(8))
        self.between = between

    def forward(self, x):
        y = self.norm(x.permute(0, 2, 3, 1))
        y = self.fc2(nn.functional.gelu(self.fc1(y.flatten(1, 2)))).reshape(y.shape) * self.gamma
        if self.between is not None:
            y = self.between(y)
        return y.permute(0, 3, 1, 2)


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_a_transpose_undone_across_per_position_ops_moves_nothing():
    x = torch.zeros(1, 8, 4, 4)
    # one transpose undone twice: the first inverse cancels it, the second moves data
    twice = costmodel.module_features(
        _Lambda(lambda t: (lambda y: (y.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)))(torch.relu(t.permute(0, 2, 3, 1)))), x
    )
    assert twice[COL["movement_melem"]] * 1e6 == pytest.approx(2 * 128) and twice[COL["ops"]] == 2
    row = costmodel.module_features(ChannelsLast(), x)
    # layer norm, two products with weights, GELU and the scale are counted; the two permutes are not
    assert row[COL["movement_melem"]] == 0 and row[COL["ops"]] == 5
    assert row[COL["linear_gmacs"]] * 1e9 == pytest.approx(2 * 16 * 8 * 32)
    # an op that mixes positions (a softmax over the width) between them: both permutes move data
    mixed = costmodel.module_features(ChannelsLast(nn.Softmax(dim=2)), x)
    assert mixed[COL["movement_melem"]] * 1e6 == pytest.approx(2 * (2 * 128)) and mixed[COL["ops"]] == 8
    # a permute that is not the inverse (to channels-last, then a swap of height and width) moves data too
    swap = costmodel.module_features(_Lambda(lambda t: t.permute(0, 2, 3, 1).transpose(1, 2)), x)
    assert swap[COL["movement_melem"]] * 1e6 == pytest.approx(2 * (2 * 128))


def test_high_resolution_traffic_counts_images_at_112_px_and_wider_only():
    # a stride-2 stem: the 224-px input read and the 112-px output written, that output read again by the next
    # stride-2 convolution, whose 56-px output is not counted
    stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1))
    row = costmodel.module_features(stem, torch.zeros(1, 3, 224, 224))
    assert row[COL["hires_melem"]] * 1e6 == pytest.approx(3 * 224 * 224 + 2 * 8 * 112 * 112)
    # a strided slice to 112 px is an image read at 112 px
    strided = _Lambda(lambda t: nn.functional.conv2d(t[:, :, ::2, ::2], torch.ones(8, 3, 1, 1)))
    row = costmodel.module_features(strided, torch.zeros(1, 3, 224, 224))
    assert row[COL["hires_melem"]] * 1e6 == pytest.approx(3 * 112 * 112 + 8 * 112 * 112)
    # a pooled gate broadcast back over the image is no 112-px traffic; a row picked from a square image is no image
    gate = _Lambda(lambda t: t * t.mean((2, 3), keepdim=True).expand(-1, -1, 112, 112))
    row = costmodel.module_features(gate, torch.zeros(1, 4, 112, 112))
    assert row[COL["hires_melem"]] * 1e6 == pytest.approx(2 * 4 * 112 * 112 + 4 * 112 * 112)  # mean reads, mul
    assert (
        costmodel.module_features(_Lambda(lambda t: torch.relu(t[..., 0])), torch.zeros(1, 4, 112, 112))[COL["hires_melem"]] == 0
    )
    # every piece of a split along the channels stays an image (MixNet's mixed kernels read their pieces)
    pieces = _Lambda(lambda t: nn.functional.conv2d(t.chunk(2, dim=1)[1], torch.ones(4, 4, 1, 1)))
    row = costmodel.module_features(pieces, torch.zeros(1, 8, 112, 112))
    assert row[COL["hires_melem"]] * 1e6 == pytest.approx(2 * 4 * 112 * 112)
    # an attention map with a 128-long last axis is not an image: no high-resolution traffic
    heads = _Lambda(lambda t: (t @ t.transpose(-2, -1)).softmax(dim=-1))
    assert costmodel.module_features(heads, torch.zeros(1, 2, 128, 4))[COL["hires_melem"]] == 0
    # channels-last: the width is read through the permute (112), not off the last axis (8 channels)
    last = _Lambda(lambda t: t.permute(0, 2, 3, 1).softmax(dim=-1))
    row = costmodel.module_features(last, torch.zeros(1, 8, 4, 112))
    assert row[COL["hires_melem"]] * 1e6 == pytest.approx(2 * 3584 + 2 * 3584)  # the permute and the softmax
    tall = costmodel.module_features(last, torch.zeros(1, 8, 112, 4))  # 112 px high, 4 wide: none
    assert tall[COL["hires_melem"]] == 0 and tall[COL["movement_melem"]] == row[COL["movement_melem"]]


class Concat(nn.Module):
    """Two convolutions joined along their channels, then BatchNorm and ReLU (MixNet's mixed kernels); with
    `passthrough`, the input itself is the second operand (ShuffleNet's units)."""

    def __init__(self, passthrough: bool = False):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 5, padding=2)
        self.bn, self.passthrough = nn.BatchNorm2d(8), passthrough

    def forward(self, x):
        return torch.relu(self.bn(torch.cat([self.a(x), x if self.passthrough else self.b(x)], dim=1)))


def test_a_channel_concat_moves_only_the_pieces_no_convolution_wrote():
    x = torch.zeros(1, 4, 8, 8)
    row = costmodel.module_features(Concat(), x)
    assert row[COL["ops"]] == 2 and row[COL["movement_melem"]] == 0 and row[COL["norm_melem"]] == 0
    # joined along the height instead: a copy
    tall = costmodel.module_features(_Lambda(lambda t: torch.cat([nn.functional.conv2d(t, torch.ones(4, 4, 1, 1))] * 2, 2)), x)
    assert tall[COL["movement_melem"]] * 1e6 == pytest.approx(4 * 256)
    # an operand that no convolution writes (the input): the concat copies that piece in (read and written once)
    # while the convolution still writes its own slice in place; BatchNorm and ReLU are ops
    copied = costmodel.module_features(Concat(passthrough=True), x)
    assert copied[COL["movement_melem"]] * 1e6 == pytest.approx(2 * 256) and copied[COL["ops"]] == 4
    assert copied[COL["norm_melem"]] * 1e6 == pytest.approx(2 * 512)


def test_a_convolution_output_is_written_in_place_once_and_copied_after():
    x, conv = torch.zeros(1, 4, 8, 8), nn.Conv2d(4, 4, 1)
    movement = COL["movement_melem"]
    # the same output twice in one concatenation: one slice written in place, the other copied (read and written)
    twice = costmodel.module_features(_Lambda(lambda t: torch.cat([conv(t)] * 2, 1)), x)
    assert twice[movement] * 1e6 == pytest.approx(2 * 256)

    def two_concats(t):
        c = conv(t)
        return torch.cat([c, conv(t)], 1) * torch.cat([c, conv(t)], 1)

    # one output in two concatenations: placed by the first, copied into the second
    shared = costmodel.module_features(_Lambda(two_concats), x)
    assert shared[movement] * 1e6 == pytest.approx(2 * 256)
    # three pieces along axis -3, two of them written by no convolution (the input and a product): both copied
    three = costmodel.module_features(_Lambda(lambda t: torch.cat([conv(t), t, t * 2], -3)), x)
    assert three[movement] * 1e6 == pytest.approx(2 * (256 + 256))


def test_a_copied_piece_at_112_px_is_high_resolution_traffic_and_a_written_one_is_not():
    x, conv = torch.zeros(1, 4, 112, 112), nn.Conv2d(4, 4, 1)
    hires = COL["hires_melem"]
    alone = costmodel.module_features(_Lambda(lambda t: conv(t)), x)
    joined = costmodel.module_features(_Lambda(lambda t: torch.cat([conv(t), t], 1)), x)
    assert (joined[hires] - alone[hires]) * 1e6 == pytest.approx(2 * 4 * 112 * 112)
    assert joined[COL["movement_melem"]] * 1e6 == pytest.approx(2 * 4 * 112 * 112)


def test_the_benches_turn_each_rule_off_by_its_one_function():
    spec = importlib.util.spec_from_file_location("bench_phone_features", BENCH / "bench_phone_features.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert all(hasattr(costmodel, name) for name, _ in bench.RULES_OFF.values())
    x, movement = torch.zeros(1, 4, 8, 8), COL["movement_melem"]
    # every concatenation a copy of every piece; or, as until 2026-12-07, only those of convolution outputs alone free
    assert bench.features_rule_off(Concat(), x, "concat_copied")[movement] * 1e6 == pytest.approx(2 * 512)
    assert bench.features_rule_off(Concat(), x, "concat_partial_copied")[movement] == 0
    partial = bench.features_rule_off(Concat(passthrough=True), x, "concat_partial_copied")
    assert partial[movement] * 1e6 == pytest.approx(2 * 256 + 512)
    assert costmodel.module_features(Concat(passthrough=True), x)[movement] * 1e6 == pytest.approx(2 * 256)


def shuffle(t: torch.Tensor, axes: tuple[int, int] = (1, 2)) -> torch.Tensor:
    n, c, h, w = t.shape
    return t.view(n, 2, c // 2, h, w).transpose(*axes).reshape(n, c, h, w)


def test_a_channel_shuffle_moves_nothing_and_other_transposes_do():
    x = torch.zeros(1, 8, 4, 4)
    row = costmodel.module_features(_Lambda(lambda t: shuffle(torch.relu(t))), x)
    assert row[COL["movement_melem"]] == 0 and row[COL["ops"]] == 1  # the ReLU alone
    # so does torch's own channel shuffle
    native = costmodel.module_features(nn.Sequential(nn.ReLU(), nn.ChannelShuffle(2)), x)
    assert native[COL["movement_melem"]] == 0 and native[COL["elementwise_melem"]] * 1e6 == pytest.approx(2 * 128)
    # swapping the channel groups with the height is no channel permutation: the transpose moves data
    row = costmodel.module_features(_Lambda(lambda t: shuffle(torch.relu(t), (1, 3))), x)
    assert row[COL["movement_melem"]] * 1e6 == pytest.approx(2 * 128)
    # nor is the same view and transpose of a tensor that is not an NCHW image (channels-last rows, attention heads)
    rows = costmodel.module_features(_Lambda(lambda t: shuffle(torch.relu(t.permute(0, 2, 3, 1)))), x)
    assert rows[COL["movement_melem"]] * 1e6 == pytest.approx(2 * (2 * 128))  # the permute and the transpose


def test_blocks_split_a_model_and_sum_to_the_whole():
    model = nn.Sequential(Block(), nn.Flatten(), nn.Linear(128, 10))
    names, rows = costmodel.block_features(model, torch.zeros(1, 3, 4, 4))
    assert names == ["0", "1", "2"]
    np.testing.assert_allclose(rows.sum(axis=0), costmodel.module_features(model, torch.zeros(1, 3, 4, 4)))
    assert rows[2, COL["linear_gmacs"]] * 1e9 == pytest.approx(1280)


def test_layer_features_of_the_space_match_the_whole_model(space):
    arch = space.preset("s0")
    import supernet

    whole = costmodel.module_features(supernet.SubNet(arch), torch.zeros(1, 3, 224, 224))
    np.testing.assert_allclose(costmodel.arch_features(arch), whole, rtol=1e-9, atol=1e-9)


def test_featurised_macs_are_the_project_counters_macs(space):
    # one MAC count: the op classes of the cost model split supernet.count_layer's total, key by key
    import supernet

    for spec in space.all_layers():
        macs = costmodel.layer_features(spec)[[COL[f] for f in FEATURES if f.endswith("_gmacs")]].sum() * 1e9
        assert macs == pytest.approx(supernet.count_layer(spec).macs, abs=0.5), spec.key


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, float], float]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, len(FEATURES))) * np.array([2, 0.05, 0.2, 0.05, 10, 2, 10, 3, 2, 4, 300])
    true = dict(zip(FEATURES, [0.4, 6.0, 1.5, 2.0, 0.03, 0.1, 0.01, 0.05, 0.08, 0.1, 2e-4]))
    y = x @ np.array([true[f] for f in FEATURES]) + 0.5
    return x, y, true, 0.5


def test_fit_recovers_known_constants_from_synthetic_timings():
    x, y, true, fixed = synthetic(60)
    model = costmodel.fit_cost_model(x, y)
    for name in FEATURES:
        assert model.coefficients[name] == pytest.approx(true[name], rel=1e-3), name
    assert model.fixed_ms == pytest.approx(fixed, rel=1e-3)
    np.testing.assert_allclose(model.predict(x), y, rtol=1e-5)


def test_robust_loss_shrugs_off_an_outlier():
    x, y, true, _ = synthetic(60, seed=1)
    y[0] *= 3  # one wrong timing
    robust = costmodel.fit_cost_model(x, y)
    plain = costmodel.fit_cost_model(x, y, loss="linear")
    err = lambda m: np.median(np.abs(m.predict(x[1:]) / y[1:] - 1))  # noqa: E731
    assert err(robust) < 0.002 and err(plain) > 5 * err(robust)


def test_lower_bound_keeps_compute_from_being_free():
    # latency explained by weights alone: the fit would make compute free; the bound charges MACs at the peak
    x = np.zeros((8, len(FEATURES)))
    x[:, COL["weight_melem"]] = np.arange(1, 9)
    x[:, COL["dense_gmacs"]] = [0.3, 0.1, 0.8, 0.2, 0.5, 0.4, 0.9, 0.6]
    y = 0.05 * x[:, COL["weight_melem"]] + 0.3
    model = costmodel.fit_cost_model(x, y, use=("dense_gmacs", "weight_melem"))
    assert model.coefficients["dense_gmacs"] == pytest.approx(1 / costmodel.LOWER_PEAK_TMACS)
    assert costmodel.fit_cost_model(x, y, use=("dense_gmacs", "weight_melem"), peak_tmacs=None).coefficients[
        "dense_gmacs"
    ] == pytest.approx(0, abs=1e-4)


def test_leave_one_family_out_on_a_small_synthetic_set():
    # three families; the third alone uses depthwise convs: held out, nothing teaches its coefficient
    x = np.zeros((9, len(FEATURES)))
    x[:, COL["dense_gmacs"]] = [1, 2, 3, 1, 2, 3, 1, 2, 3]
    x[:, COL["depthwise_gmacs"]] = [0, 0, 0, 0, 0, 0, 0.1, 0.1, 0.1]
    y = 0.5 * x[:, COL["dense_gmacs"]] + 5.0 * x[:, COL["depthwise_gmacs"]] + 0.2
    groups = ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    result = costmodel.leave_group_out(x, y, groups, use=("dense_gmacs", "depthwise_gmacs"), peak_tmacs=None)
    err = result["group_mean_signed_pct"]
    assert abs(err["a"]) < 0.1 and abs(err["b"]) < 0.1
    expected_c = 100 * np.mean((0.5 * x[6:, 0] + 0.2) / y[6:] - 1)  # depthwise cost unknown: fitted at 0
    assert err["c"] == pytest.approx(expected_c, abs=0.1)
    use, records = costmodel.select_features(
        x, y, groups, candidates=[("dense_gmacs",), ("dense_gmacs", "depthwise_gmacs")], peak_tmacs=None
    )
    assert len(records) == 2 and all("worst_group_pct" in r for r in records)


def test_a_tied_feature_is_priced_by_its_target():
    # only group "c" has attention products; tied to the weight-matrix products, held out it is still priced
    x = np.zeros((9, len(FEATURES)))
    x[:, COL["linear_gmacs"]] = [1, 2, 3, 1.5, 2.5, 0.5, 1, 2, 3]
    x[6:, COL["attention_gmacs"]] = [0.5, 1.0, 0.2]
    y = 0.8 * (x[:, COL["linear_gmacs"]] + x[:, COL["attention_gmacs"]]) + 0.2
    groups = ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    tied = {"attention_gmacs": "linear_gmacs"}
    model = costmodel.fit_cost_model(x[:6], y[:6], use=("linear_gmacs", "attention_gmacs"), tied=tied, peak_tmacs=None)
    assert model.coefficients["linear_gmacs"] == pytest.approx(0.8, rel=1e-4)
    assert model.coefficients["attention_gmacs"] == model.coefficients["linear_gmacs"]
    assert model.fixed_ms == pytest.approx(0.2, abs=1e-4)
    result = costmodel.leave_group_out(x, y, groups, use=("linear_gmacs", "attention_gmacs"), tied=tied, peak_tmacs=None)
    assert abs(result["group_mean_signed_pct"]["c"]) < 0.1
    # untied, nothing teaches group c's attention cost: it stays at its lower bound (0 here)
    untied = costmodel.leave_group_out(x, y, groups, use=("linear_gmacs", "attention_gmacs"), peak_tmacs=None)
    assert untied["group_mean_signed_pct"]["c"] < -10
    with pytest.raises(ValueError, match="tied itself"):
        costmodel.fit_cost_model(x, y, tied={"attention_gmacs": "linear_gmacs", "linear_gmacs": "dense_gmacs"})
    with pytest.raises(ValueError, match="unknown feature"):
        costmodel.fit_cost_model(x, y, tied={"attention_gmacs": "gemm"})
    with pytest.raises(ValueError, match="cannot be tied"):
        costmodel.fit_cost_model(x, y, tied={"ops": "linear_gmacs"})


def test_rank_metrics_by_hand():
    m = costmodel.rank_metrics([1.1, 2.0, 2.5], [1.0, 2.0, 3.0])
    assert m["mape_pct"] == pytest.approx((10 + 0 + 16.6667) / 3, abs=0.01)
    assert m["within_10_pct"] == pytest.approx(66.7) and m["kendall_tau"] == 1.0
