"""A table for one's own device from a few whole-model timings: choose, export, time, fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

import latency_lut
import search_spaces
from latency_lut import costmodel
from latency_lut.fitting import choose_models, export_models, fit_table
from tests.conftest import assert_one_line_error

TINY = "efficientformerv2-tiny"
#: A known device: ms = 0.4 + 0.5 ms/GMAC dense + 8 ms/GMAC depthwise + 0.06 ms per Melem moved.
TRUE = costmodel.CostModel(
    {**{f: 0.0 for f in costmodel.FEATURES}, "dense_gmacs": 0.5, "depthwise_gmacs": 8.0, "movement_melem": 0.06}, 0.4
)


def true_ms(arch) -> float:
    return float(TRUE.predict(costmodel.arch_features(arch))[0])


def fit_cli(cli, measurements: dict, manifest, tmp_path, device: str, *extra: str):
    """``nas lut fit`` of `measurements` (written as JSON) against `manifest`, into ``tmp_path/DEVICE.json``."""
    (tmp_path / "m.json").write_text(json.dumps(measurements))
    return cli(
        "lut",
        "fit",
        "--device",
        device,
        "--measurements",
        tmp_path / "m.json",
        "--manifest",
        manifest,
        "--out",
        tmp_path / f"{device}.json",
        *extra,
    )


def logdet(archs) -> float:
    from latency_lut.fitting import _design

    x = _design(np.array([costmodel.arch_features(a) for a in archs]))
    return float(np.linalg.slogdet(x.T @ x + 1e-6 * np.eye(x.shape[1]))[1])


def test_chosen_models_are_distinct_and_better_conditioned_than_random():
    space = search_spaces.load(TINY)
    chosen = choose_models(space, 12, pool=500, seed=0)
    assert len({a.id for a in chosen}) == 12
    import random

    rng = random.Random(1)
    randoms = [logdet([space.sample(rng) for _ in range(12)]) for _ in range(5)]
    assert logdet(chosen) > max(randoms)


def test_chosen_models_are_no_larger_than_random_ones():
    """The fit's residuals are relative, so the design must not favour the largest models (slowest to
    time, no more informative): the chosen ones' MACs average no more than a random sample's."""
    import random

    space = search_spaces.load(TINY)
    macs = [i for i, name in enumerate(costmodel.FEATURES) if name.endswith("_gmacs")]

    def mean_gmacs(archs) -> float:
        return float(np.mean([costmodel.arch_features(a)[macs].sum() for a in archs]))

    rng = random.Random(1)
    chosen = choose_models(space, 12, pool=500, seed=0)
    assert mean_gmacs(chosen) <= mean_gmacs([space.sample(rng) for _ in range(500)])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    manifest = export_models(TINY, "torchscript", 8, out, seed=0)
    return out, manifest


def test_export_models_writes_models_and_manifest(exported):
    out, manifest = exported
    assert manifest["kind"] == "fit-models" and manifest["backend"] == "torchscript" and len(manifest["models"]) == 8
    for model in manifest["models"]:
        assert (out / model["file"]).is_file()
        arch = search_spaces.Arch.from_dict(model["arch"])
        np.testing.assert_allclose(model["features"], costmodel.arch_features(arch), rtol=1e-6, atol=1e-9)
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_fit_round_trip_recovers_a_synthetic_device(exported, tmp_path, cli):
    out, manifest = exported
    measured = {m["id"]: true_ms(search_spaces.Arch.from_dict(m["arch"])) for m in manifest["models"]}
    code, stdout, err = fit_cli(cli, {"models": measured}, out / "manifest.json", tmp_path, "mine", "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["models"] == 8 and info["error"]["mape_pct"] < 5  # 8 models for 11 coefficients: folds of 6-7
    assert info["notes"] and "8 models for 11 coefficients" in info["notes"][0]  # the user is told it is thin
    lut = latency_lut.LUT.read(tmp_path / "mine.json")
    assert lut.provenance == "fitted" and lut.meta["provenance"]["error"]["how"].startswith("5-fold")
    space = search_spaces.load(TINY)
    assert set(lut.entries) == {s.key for s in space.all_layers()}
    import random

    rng = random.Random(7)
    held_out = [space.sample(rng) for _ in range(30)]
    predicted = lut.predict_many(held_out)
    truth = np.array([true_ms(a) for a in held_out])
    assert np.max(np.abs(predicted / truth - 1)) < 0.03
    # a CSV of the same timings gives the same table
    (tmp_path / "m.csv").write_text("key,ms\n" + "".join(f"model:{k},{v}\n" for k, v in measured.items()))
    again = fit_table(tmp_path / "m.csv", out / "manifest.json", "mine", tmp_path / "mine2.json")
    assert again.entries == lut.entries


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda m: {**m, "nosuchmodel": 1.0}, "'nosuchmodel' is not in the manifest"),
        (lambda m: dict(list(m.items())[1:]), "no measurement for model"),
        (lambda m: {**m, next(iter(m)): "fast"}, "'fast'"),
        (lambda m: {**m, next(iter(m)): -1.0}, "-1.0"),
        (lambda m: {**m, next(iter(m)): float("nan")}, "nan"),
    ],
    ids=["unknown", "missing", "non-numeric", "negative", "nan"],
)
def test_bad_measurement_files_exit_2_naming_the_entry_and_write_nothing(exported, tmp_path, cli, edit, needle):
    out, manifest = exported
    measured = {m["id"]: 1.0 + i / 10 for i, m in enumerate(manifest["models"])}
    bad = edit(measured)
    code, stdout, err = fit_cli(cli, {"models": bad}, out / "manifest.json", tmp_path, "x")
    assert_one_line_error(code, stdout, err, needle)
    assert not (tmp_path / "x.json").exists()


def test_build_fit_times_whole_models_here(tmp_path, cli):
    code, stdout, err = cli(
        "lut",
        "build",
        "--device",
        "here",
        "--backend",
        "torch",
        "--space",
        TINY,
        "--fit",
        "5",
        "--passes",
        "1",
        "--out",
        tmp_path / "here.json",
        "--json",
    )
    assert code == 0, err
    info = json.loads(stdout)
    assert info["models"] == 5 and info["measuring_s"] > 0
    lut = latency_lut.LUT.read(tmp_path / "here.json")
    assert lut.provenance == "fitted" and lut.meta["provenance"]["host"]
    assert all(e["ms"] >= 0 for e in lut.entries.values())
    code, stdout, err = cli("lut", "build", "--device", "here", "--space", TINY, "--fit", "2", "--out", tmp_path / "y.json")
    assert_one_line_error(code, stdout, err, "--fit needs at least 3")


def test_a_fit_from_enough_models_carries_no_note():
    from nas.cli.lut import fit_notes, models_to_rely_on

    assert fit_notes(20, 9) == [] and fit_notes(19, 9) and "time 20 or more" in fit_notes(10, 9)[0]
    # export-models' default count is what the note asks for: two per coefficient the space's fit frees (every
    # feature but the sigmoid family, which no layer here has, and the fixed cost)
    for name in (TINY, "efficientformerv2"):
        space = search_spaces.load(name)
        freed = int(costmodel.specs_features(space.all_layers()).any(axis=0).sum())
        assert freed == len(costmodel.FEATURES) - 1 and models_to_rely_on(space) == 22
        assert fit_notes(models_to_rely_on(space), freed) == [] and fit_notes(21, freed)


def test_export_models_without_n_writes_what_the_fit_needs(tmp_path, cli, monkeypatch):
    # the command's default count is models_to_rely_on(space) (the export itself is tested above)
    import nas.cli.lut as lut_cli

    asked = []
    monkeypatch.setattr(
        lut_cli, "export_models", lambda space, backend, n, out, **kw: asked.append((space.name, n)) or {"models": [{}] * n}
    )
    code, stdout, err = cli("lut", "export-models", "--backend", "torchscript", "--space", TINY, "--out", tmp_path, "--json")
    assert code == 0, err
    assert asked == [(TINY, 22)] and json.loads(stdout)["models"] == 22
    code, stdout, err = cli("lut", "export-models", "--space", TINY, "--n", "2", "--out", tmp_path)
    assert_one_line_error(code, stdout, err, "--n must be at least 3")
