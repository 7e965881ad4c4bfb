"""The accuracy study's ground truth: results recorded as data, a rerun training only what is missing,
an interrupted training resumed, a spread architecture order that grows, a bad results file refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nas.train.study as study
import supernet
from nas.errors import BadInput
from nas.train.study import GroundTruth, Recipe, grow, spread_archs

RECIPE = Recipe(
    "test-synthetic",
    data="synthetic:train=64,val=32,classes=4,size=16",
    space="efficientformerv2-tiny",
    resolution=32,
    epochs=1,
    batch_size=32,
    train_images=None,
)
COMMITTED = Path(__file__).parents[3] / "bench" / "results" / "accuracy_study"  # the study's results as data


def test_grow_records_results_and_a_rerun_trains_nothing(tmp_path, monkeypatch):
    space = RECIPE.study_space(num_classes=4)
    archs = spread_archs(space, 2, pool=20)
    truth = GroundTruth(tmp_path / "truth.jsonl")
    done = grow(truth, archs[:1], RECIPE, [0, 1], tmp_path / "ckpt")
    assert [(r.arch.id, r.seed) for r in done] == [(archs[0].id, 0), (archs[0].id, 1)]
    lines = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert [(line["arch_id"], line["seed"], line["recipe"]) for line in lines] == [
        (archs[0].id, 0, RECIPE.name),
        (archs[0].id, 1, RECIPE.name),
    ]
    assert all(0 <= line["top1"] <= 100 and line["seconds"] > 0 for line in lines)
    assert lines[0]["params"] == supernet.count(done[0].arch).params

    # a new process reads the committed results: nothing is retrained, only the new architecture is
    calls = []
    real = study.train_one
    monkeypatch.setattr(study, "train_one", lambda arch, *a, **k: calls.append(arch.id) or real(arch, *a, **k))
    again = GroundTruth(tmp_path / "truth.jsonl")
    assert again.top1(archs, RECIPE.name, 0) == [lines[0]["top1"], None]
    grow(again, archs, RECIPE, [0], tmp_path / "ckpt")
    assert calls == [archs[1].id]
    assert len((tmp_path / "truth.jsonl").read_text().splitlines()) == 3


def test_an_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    space = RECIPE.study_space(num_classes=4)
    arch = space.smallest()
    path = tmp_path / "ckpt" / RECIPE.name / "seed0" / f"{arch.id}.pt"
    path.parent.mkdir(parents=True)
    from nas.train import train

    train({**RECIPE.settings(arch, 0), "max_steps": 1}, path)  # stopped after one of two steps
    result = study.train_one(arch, RECIPE, 0, tmp_path / "ckpt")
    uninterrupted = study.train_one(arch, RECIPE, 0, tmp_path / "other")
    assert result.top1 == uninterrupted.top1  # resumed exactly


def test_spread_order_starts_with_the_smallest_and_does_not_depend_on_n():
    space = Recipe("r").study_space()
    first = spread_archs(space, 6, pool=200)
    assert first[0] == space.smallest()
    assert spread_archs(space, 3, pool=200) == first[:3]
    mixers = {m for arch in first for stage in arch.mixers for m in stage}
    assert len(mixers) >= 4
    capped = spread_archs(space, 4, pool=200, max_macs=40e6)
    assert all(supernet.count(a).macs <= 40e6 for a in capped)


def test_a_damaged_results_file_is_one_line_bad_input(tmp_path):
    path = tmp_path / "truth.jsonl"
    path.write_text('{"arch_id": "x"}\n')
    with pytest.raises(BadInput) as info:
        GroundTruth(path)
    assert "truth.jsonl:1" in str(info.value) and "\n" not in str(info.value)


def test_recipe_names_and_train_images_are_checked():
    with pytest.raises(BadInput):
        Recipe("a b")
    with pytest.raises(BadInput, match="memory_format 'nhwc'"):
        Recipe("r", memory_format="nhwc")
    # a recipe names its layout (rounding differs); the e8 truth was trained contiguous, supernets run the fastest
    assert study.RECIPES["fm5k-e8-64"].common_settings(0)["memory_format"] == "contiguous"
    assert study.SupernetRecipe("s").settings(study.RECIPES["fm5k-e8-64"], 0)["memory_format"] == "channels-last"
    from nas.train.settings import TrainSettings

    with pytest.raises(BadInput, match="--train-images 0"):
        TrainSettings(train_images=0)


def test_the_committed_study_resumes_without_retraining(monkeypatch):
    from nas.train.study import RECIPES, study_archs

    truth = GroundTruth(COMMITTED / "truth.jsonl")
    recipe = RECIPES["fm5k-e8-64"]
    archs = study_archs(recipe, 7)
    assert all(truth.get(a, recipe.name, s) is not None for a in archs for s in (0, 1))

    def refuse(*args, **kwargs):
        raise AssertionError("a committed result was trained again")

    monkeypatch.setattr(study, "train_one", refuse)
    monkeypatch.setattr(GroundTruth, "add", refuse)  # and the committed file is not rewritten
    assert grow(truth, archs, recipe, [0, 1], "unused") == []


def test_the_committed_two_pass_supernet_ranks_the_committed_truth_at_the_goal():
    """The README's supernet figures are recomputed from the committed data, not retyped: two passes
    (`kl-e2`) reach the study's goal of tau 0.7 and one pass (`kl-e1`) does not."""
    from nas.estimate import rank_agreement
    from nas.train.study import RECIPES, SupernetStudy, study_archs

    recipe = RECIPES["fm60k-e1-64"]
    archs, per_seed = GroundTruth(COMMITTED / "truth.jsonl").complete(study_archs(recipe, 24), recipe.name, [0, 1])
    assert len(archs) == 24
    truth = per_seed.mean(axis=0)
    supernets = SupernetStudy(COMMITTED / "supernets.jsonl")
    taus = {}
    for name in ("kl-e1", "kl-e2"):
        scores = supernets.get(recipe.name, name, 0, 64)
        taus[name] = rank_agreement([scores.top1[a.id] for a in archs], truth, seed=0).kendall_tau
    assert taus == pytest.approx({"kl-e1": 0.613, "kl-e2": 0.713}, abs=5e-4)


def test_supernet_scores_grow_with_the_study_and_train_once(tmp_path, monkeypatch):
    space = RECIPE.study_space(num_classes=4)
    archs = spread_archs(space, 3, pool=20)
    lever = study.SupernetRecipe("test-alpha", epochs=1, distill="alpha", sample_gap=2.0)
    records = study.SupernetStudy(tmp_path / "supernets.jsonl")
    first = study.score_supernet(records, RECIPE, lever, 0, archs[:2], 2, tmp_path / "ckpt")
    assert set(first.top1) == {a.id for a in archs[:2]} and all(0 <= v <= 100 for v in first.top1.values())
    assert first.train_seconds > 0 and first.eval_seconds > 0
    state = json.loads((tmp_path / "supernets.jsonl").read_text())
    assert (state["supernet"], state["calib_batches"], state["recipe"]) == ("test-alpha", 2, RECIPE.name)

    # a new process: the supernet is not retrained and only the new architecture is scored
    monkeypatch.setattr(study, "train", lambda *a, **k: pytest.fail("retrained"))
    scored = []
    real = study.evaluate_subnet
    monkeypatch.setattr(study, "evaluate_subnet", lambda net, arch, *a, **k: scored.append(arch.id) or real(net, arch, *a, **k))
    again = study.score_supernet(study.SupernetStudy(tmp_path / "supernets.jsonl"), RECIPE, lever, 0, archs, 2, tmp_path / "ckpt")
    assert scored == [archs[2].id] and {k: again.top1[k] for k in first.top1} == pytest.approx(first.top1, abs=1e-4)
    assert len((tmp_path / "supernets.jsonl").read_text().splitlines()) == 1
    ckpt = study.load_checkpoint(tmp_path / "ckpt" / RECIPE.name / "supernets" / "test-alpha-seed0.pt")
    assert ckpt.kind == "supernet" and ckpt.settings.distill == "alpha" and ckpt.settings.sample_gap == 2.0

    # a supernet trained in another layout (as before channels-last was the default) is resumed, not refused
    monkeypatch.undo()
    stale = dict(lever.settings(RECIPE, 0), memory_format="contiguous")
    monkeypatch.setattr(study.SupernetRecipe, "settings", lambda self, recipe, seed: stale)
    path, _ = study.train_supernet(RECIPE, lever, 0, tmp_path / "ckpt")
    assert path.exists()
