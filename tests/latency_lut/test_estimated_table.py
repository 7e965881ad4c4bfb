"""The shipped estimated iPhone 12 / Core ML table: coverage, provenance, fit and leave-one-out figures."""

from __future__ import annotations

import numpy as np
import pytest

from latency_lut import estimate

PRESETS = list(estimate.PUBLISHED_MS)


def preset_features_from_table(lut, space) -> list[np.ndarray]:
    """Per-layer (macs, bytes, ops) of each preset, as recorded in the table's entries."""
    return [
        np.array([[lut.entries[s.key][f] for f in ("macs", "bytes", "ops")] for s in space.preset(n).layers()], dtype=float)
        for n in PRESETS
    ]


def test_loads_estimated_with_its_sources(lut):
    assert lut.provenance == "estimated"
    assert (lut.device, lut.backend, lut.threads, lut.meta["batch"]) == ("iphone12-coreml", "coreml", 0, 1)
    prov = lut.meta["provenance"]
    assert "2212.08059" in prov["sources"][0]
    assert set(prov["fitted_constants"]) == set(estimate.CONSTANTS)
    assert lut.calibration.scale == 1.0 and lut.calibration.per_layer_ms == 0.0
    assert lut.calibration.offset_ms == pytest.approx(prov["fitted_constants"]["fixed_ms"])
    assert {"python", "torch", "numpy", "scipy"} <= set(lut.meta["versions"])


def test_covers_every_key_of_the_space(lut, space):
    keys = {s.key for s in space.all_layers()}
    assert len(keys) == 762
    assert set(lut.entries) == keys
    assert all(e["ms"] > 0 and e["spread_ms"] == 0.0 for e in lut.entries.values())


def test_presets_within_recorded_in_sample_error_and_monotone(lut, space):
    prov = lut.meta["provenance"]
    predicted = [lut.predict(space.preset(n)) for n in PRESETS]
    for name, ms, point in zip(PRESETS, predicted, prov["fit_points"]):
        assert point["preset"] == name and point["published_ms"] == estimate.PUBLISHED_MS[name]
        err = 100 * abs(ms / point["published_ms"] - 1)
        assert err <= abs(prov["in_sample_error_pct"][name]) + 0.01
        assert ms == pytest.approx(point["predicted_ms"], abs=1e-3)
    assert predicted[0] == pytest.approx(0.9, rel=0.05)
    assert predicted == sorted(predicted) and len(set(predicted)) == 4  # S0 < S1 < S2 < L
    np.testing.assert_allclose(lut.predict_many([space.preset(n) for n in PRESETS]), predicted, rtol=1e-9)


def test_entries_follow_the_recorded_model(lut, space):
    constants = lut.meta["provenance"]["fitted_constants"]
    keys = sorted(lut.entries)
    feats = np.array([[lut.entries[k][f] for f in ("macs", "bytes", "ops")] for k in keys], dtype=float)
    np.testing.assert_allclose([lut.entries[k]["ms"] for k in keys], estimate.layer_ms(feats, constants), atol=2e-6)
    # the recorded features are what the layer modules give today
    specs = {s.key: s for s in space.all_layers()}
    for key in ("mhsa:c176:g7", "separable:c96:g14", "additive:c176:g7", "attn_down:c96-176:g14:s2", "ffn:c32:g56:e4"):
        assert estimate.layer_features(specs[key]) == tuple(lut.entries[key][f] for f in ("macs", "bytes", "ops"))


@pytest.mark.slow
def test_leave_one_out_figures_are_recomputable(lut, space):
    prov = lut.meta["provenance"]
    feats = preset_features_from_table(lut, space)
    published = [estimate.PUBLISHED_MS[n] for n in PRESETS]
    errors = []
    for i, record in enumerate(prov["leave_one_out"]):
        assert record["preset"] == PRESETS[i]
        keep = [j for j in range(4) if j != i]
        constants = estimate.fit([feats[j] for j in keep], [published[j] for j in keep], model=prov["model"])
        ms = estimate.predict_ms([feats[i]], constants)[0]
        errors.append(100 * (ms / published[i] - 1))
        assert errors[-1] == pytest.approx(record["error_pct"], abs=0.05)
    assert np.mean(np.abs(errors)) == pytest.approx(prov["loo_mean_abs_error_pct"], abs=0.05)
