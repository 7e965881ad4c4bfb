"""The shipped estimated iPhone 12 / Core ML table: coverage, provenance, the cost model and its held-out errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latency_lut import costmodel, estimate
from latency_lut.published import FEATURES_FILE, OTHER_PHONES, PUBLISHED, reference_features

PRESETS = ["s0", "s1", "s2", "l"]


def test_loads_estimated_with_its_sources(lut):
    assert lut.provenance == "estimated"
    assert (lut.device, lut.backend, lut.threads, lut.meta["batch"]) == ("iphone12-coreml", "coreml", 0, 1)
    prov = lut.meta["provenance"]
    assert any("2212.08059" in s for s in prov["sources"]) and len(prov["sources"]) >= 5
    assert lut.calibration.scale == 1.0 and lut.calibration.per_layer_ms == 0.0
    assert lut.calibration.offset_ms == pytest.approx(prov["cost_model"]["fixed_ms"])
    assert {"python", "torch", "numpy", "scipy"} <= set(lut.meta["versions"])
    # every published point the fit uses is recorded with its source, and the ones left out as checks
    fitted = [r for r in PUBLISHED if r.fitted]
    assert [p["model"] for p in prov["points"]] == [r.model for r in fitted]
    assert len({r.family for r in fitted}) == 16 and len(fitted) == 55
    assert [c["model"] for c in prov["checks"]] == ["mobilevit_xxs", "mobilevit_s"]
    # one model published at two resolutions is two points, each featurised at its own
    convnext = [p for p in prov["points"] if p["model"] == "convnext_tiny"]
    assert [(p["resolution"], p["published_ms"]) for p in convnext] == [(224, 3.7), (384, 8.6)]
    assert convnext[1]["fitted_ms"] > 2 * convnext[0]["fitted_ms"]


def test_covers_every_key_of_the_space(lut, space):
    keys = {s.key for s in space.all_layers()}
    assert len(keys) == 762
    assert set(lut.entries) == keys
    assert all(e["ms"] > 0 and e["spread_ms"] == 0.0 for e in lut.entries.values())


def test_entries_follow_the_recorded_model(lut, space):
    model = costmodel.CostModel.from_dict(lut.meta["provenance"]["cost_model"])
    keys = sorted(lut.entries)
    feats = np.array([lut.entries[k]["features"] for k in keys])
    np.testing.assert_allclose([lut.entries[k]["ms"] for k in keys], model.layer_ms(feats), atol=2e-6)
    # the recorded features are what the layer modules give today
    specs = {s.key: s for s in space.all_layers()}
    for key in ("mhsa:c176:g7", "separable:c96:g14", "additive:c176:g7", "attn_down:c96-176:g14:s2", "ffn:c32:g56:e4"):
        np.testing.assert_allclose(costmodel.layer_features(specs[key]), lut.entries[key]["features"], rtol=1e-6, atol=1e-9)


def test_presets_as_recorded_and_monotone(lut, space):
    prov = lut.meta["provenance"]
    points = {p["model"]: p for p in prov["points"]}
    predicted = [lut.predict(space.preset(n)) for n in PRESETS]
    for name, ms in zip(PRESETS, predicted):
        assert ms == pytest.approx(points[f"preset:{name}"]["fitted_ms"], abs=1e-3)
    assert predicted == sorted(predicted) and len(set(predicted)) == 4  # S0 < S1 < S2 < L
    assert predicted[0] == pytest.approx(0.9, rel=0.15)


def test_held_out_figures_meet_the_goals_and_are_recomputable(lut, space):
    prov = lut.meta["provenance"]
    err = prov["error"]
    assert err["mape_pct"] <= 20 and err["within_20_pct"] >= 60 and err["kendall_tau"] >= 0.8
    # every family's mean signed error within +-20%
    assert {f: pct for f, pct in err["family_mean_signed_pct"].items() if abs(pct) > 20} == {}
    # every feature fitted (nothing chosen by these errors), attention priced as weight-matrix products
    assert prov["fitted_features"] == list(costmodel.FEATURES) and prov["tied"] == estimate.TIED
    coefficients = prov["cost_model"]["coefficients"]
    assert coefficients["attention_gmacs"] == coefficients["linear_gmacs"]
    records, x = estimate.published_points(space)
    y = [r.ms for r in records]
    again = costmodel.leave_group_out(x, y, [r.family for r in records], use=prov["fitted_features"], tied=prov["tied"])
    assert again["metrics"] == {k: err[k] for k in again["metrics"]}
    np.testing.assert_allclose(again["predicted_ms"], [p["held_out_ms"] for p in prov["points"]], atol=1e-3)
    # the figure on the points timed on an iPhone 12 itself (FastViT's, MobileOne-S0 and FastViT's figure's
    # DeiT, ConvNeXt and PoolFormer points come from a 12 Pro)
    own = np.array([r.phone == "iPhone 12" for r in records])
    assert own.sum() == 42
    assert {r.family for r, o in zip(records, own) if not o} == {"fastvit", "mobileone", "deit", "convnext", "poolformer"}
    assert costmodel.rank_metrics(again["predicted_ms"][own], np.array(y)[own]) == err["iphone12_points"]


def test_reference_features_are_committed_for_every_timm_model():
    features = reference_features()
    assert {r.key for r in PUBLISHED if not r.model.startswith("preset:")} == set(features)
    # each model was featurised at the resolution its latency was published for (FastViT: 256 px)
    committed = json.loads(FEATURES_FILE.read_text())["models"]
    assert all(committed[r.key]["resolution"] == r.resolution for r in PUBLISHED if r.key in committed)
    assert committed["fastvit_t8@256"]["resolution"] == 256 and committed["repvit_m0_9"]["resolution"] == 224
    # parameter-free sanity: RepViT M0.9's 0.82 GMACs (published) come back from its features
    gmacs = features["repvit_m0_9"][: costmodel.FEATURES.index("attention_gmacs") + 1].sum()
    assert gmacs == pytest.approx(0.82, abs=0.01)


def test_silu_networks_carry_the_sigmoid_feature_and_this_space_does_not(lut):
    # EfficientNet and MobileViTv2 are priced for their SiLU outputs; this project's layers have none,
    # so the feature moves the space's latencies only through the other coefficients it freed
    features = reference_features()
    column = costmodel.FEATURES.index("sigmoid_melem")
    assert features["efficientnet_b0"][column] > 4 and features["mobilevitv2_100@256"][column] > 8
    assert features["repvit_m0_9"][column] < 0.1 and features["deit_tiny_patch16_224"][column] == 0
    assert all(entry["features"][column] == 0 for entry in lut.entries.values())
    assert lut.meta["provenance"]["cost_model"]["coefficients"]["sigmoid_melem"] > 0.05


def test_convnext_permutes_cancel_and_deit_head_splits_do_not():
    # ConvNeXt's channels-last pairs move no data; DeiT's head splits and merges are never undone, so they do
    features = reference_features()
    column = costmodel.FEATURES.index("movement_melem")
    assert all(features[k][column] == 0 for k in ("convnext_tiny", "convnext_tiny@384", "convnext_small", "convnext_base"))
    assert features["deit_tiny_patch16_224"][column] > 4 and features["deit_base_patch16_224"][column] > 18


def test_high_resolution_traffic_separates_mobilenet_from_mobileone(lut):
    # MobileNetV2 and MNASNet keep 96-channel expansions at 112 px; MobileOne leaves 112 px after its stem;
    # DeiT reads its 224-px input and has no other image (its 197-long attention maps are not images); of this
    # space's layers only the stems carry the feature
    features = reference_features()
    column = costmodel.FEATURES.index("hires_melem")
    assert features["mobilenetv2_100"][column] > 4 and features["semnasnet_100"][column] > 4
    assert features["mobileone_s1"][column] < 0.4 * features["mobilenetv2_100"][column]
    assert features["deit_tiny_patch16_224"][column] == pytest.approx(3 * 224 * 224 / 1e6)
    carrying = {key.split(":")[0] for key, entry in lut.entries.items() if entry["features"][column] > 0}
    assert carrying == {"stem"}
    assert lut.meta["provenance"]["cost_model"]["coefficients"]["hires_melem"] > 0.05


def test_channel_shuffles_and_what_convolutions_concatenate_move_nothing():
    # ShuffleNetV2's shuffles fold into weights; its concats copy only the pass-through half (13 units: read and
    # written once), the branch's convolution writing its half in place; MixNet's concats of convolutions move nothing
    features = reference_features()
    column = costmodel.FEATURES.index("movement_melem")
    assert features["mixnet_s"][column] == 0
    assert features["torchvision:shufflenet_v2_x2_0"][column] == pytest.approx(1.387, abs=0.005)


def test_other_phones_tables_are_checks_only_one_row_per_model_and_setup():
    # other phones' and toolchains' published timings never enter the fit nor the table's checks
    assert all(not r.fitted for r in OTHER_PHONES)
    records, _ = estimate.published_points()
    checks, _ = estimate.published_points(fitted=False)
    used = {(r.phone, r.paper, r.key) for r in [*records, *checks]}
    assert not {(r.phone, r.paper, r.key) for r in OTHER_PHONES} & used
    # each names its phone and paper; the same model twice in one setup would count twice
    setups = {(r.phone, r.paper) for r in OTHER_PHONES}
    assert setups == {("iPhone 13", "iFormer paper"), ("iPhone 14", "SwiftFormer paper"), ("iPhone 12", "SHViT paper")}
    for setup in setups:
        keys = [r.key for r in OTHER_PHONES if (r.phone, r.paper) == setup]
        assert len(keys) == len(set(keys))
    assert all(0 < r.ms < 20 for r in OTHER_PHONES) and len(OTHER_PHONES) == 76
