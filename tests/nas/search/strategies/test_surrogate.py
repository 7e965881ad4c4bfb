"""The evolution's accuracy surrogate and its expected-hypervolume-improvement batch selection."""

from __future__ import annotations

import numpy as np
import pytest

import supernet
from nas.estimate import Features, SyntheticAccuracy
from nas.search.strategies.surrogate import RidgeSurrogate, expected_improvement_batch


def test_features_are_genes_in_use_and_the_log_counts(tiny):
    features = Features(tiny)
    archs = [tiny.smallest(), tiny.largest()] + [tiny.sample(np.random.default_rng(i)) for i in range(10)]
    x = features(features.codes(archs))
    genes = tiny.genes()
    assert x.shape == (len(archs), sum(len(g.choices) for g in genes) + 2)
    for row, arch in zip(x, archs):
        counts = supernet.count(arch)
        assert row[-2] == pytest.approx(np.log(counts.params)) and row[-1] == pytest.approx(np.log(counts.macs))
        # one set column per gene in use: resolution, depth and width per stage, two per active block
        in_use = 1 + sum(2 + 2 * d for d in arch.depths)
        assert row[:-2].sum() == in_use


def test_ridge_leave_one_out_spread_equals_refitting_without_each_point(tiny):
    rng = np.random.default_rng(0)
    archs = list({a.id: a for a in (tiny.sample(rng) for _ in range(60))}.values())[:40]
    truth = SyntheticAccuracy(tiny)
    y = np.array(truth.estimate(archs))
    model = RidgeSurrogate(Features(tiny))
    codes = model.features.codes(archs)
    model.fit(codes, y)
    # brute force at the chosen penalty: fit on all but one, predict that one
    alpha = model.alpha
    residuals = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        one = RidgeSurrogate(model.features)
        one.ALPHAS = (alpha,)
        one.fit(codes[keep], y[keep])
        residuals.append(y[i] - one.predict(codes[i : i + 1])[0])
    # the closed form standardises on all points, the refits on the others: close, not identical
    assert model.sigma == pytest.approx(np.sqrt(np.mean(np.square(residuals))), rel=0.05)


def test_ridge_learns_the_smooth_synthetic_accuracy(tiny):
    rng = np.random.default_rng(1)
    smooth = SyntheticAccuracy(tiny, ripple=0.0)
    train = [tiny.sample(rng) for _ in range(300)]
    test = [tiny.sample(rng) for _ in range(200)]
    model = RidgeSurrogate(Features(tiny))
    model.fit(model.features.codes(train), smooth.estimate(train))
    error = model.predict(model.features.codes(test)) - np.array(smooth.estimate(test))
    worst, scale = smooth.reference()
    assert np.abs(error).mean() < 0.02 * scale  # within 2% of the space's accuracy span
    assert model.sigma < 0.05 * scale


def test_batch_picks_the_largest_improvements_and_skips_the_dominated():
    front = np.array([[0.5, 0.5]])
    candidates = np.array(
        [
            [0.6, 0.6],  # dominated by the front: no gain
            [0.3, 0.3],  # gain 0.7*0.7 - 0.5*0.5 = 0.24
            [0.2, 0.9],  # gain 0.8*0.1 - 0.5*0.1 = 0.03
            [0.31, 0.31],
        ]
    )  # gain 0.69*0.69 - 0.25 = 0.2261 alone, nothing once (0.3, 0.3) is in
    picks = expected_improvement_batch(front, candidates, np.zeros(4), column=0, k=3)
    assert picks == [1, 2]  # then (0.2, 0.9) adds 0.08 - 0.07 = 0.01 and (0.31, 0.31) nothing: not picked
    assert expected_improvement_batch(front, candidates, np.zeros(4), column=0, k=1) == [1]
    assert expected_improvement_batch(front, candidates[:1], np.zeros(1), column=0, k=5) == []


def test_uncertainty_gives_a_dominated_prediction_a_chance():
    front = np.array([[0.5, 0.5]])
    hopeless = np.array([[0.9, 0.6]])
    assert expected_improvement_batch(front, hopeless, np.array([0.0]), 0, 1) == []
    assert expected_improvement_batch(front, hopeless, np.array([0.5]), 0, 1) == [0]
