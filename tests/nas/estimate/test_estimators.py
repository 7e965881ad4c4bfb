"""The supernet and predictor accuracy estimators, end to end through `nas search`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import search_spaces
from nas import BadInput
from nas.cli import main
from nas.estimate import PredictorEstimator, SupernetEstimator, make_estimator
from nas.train import evaluate_subnet, load_checkpoint, train

DATA = "synthetic:train=64,val=32,classes=4"
TINY = "efficientformerv2-tiny"
BUDGET = ["params=2.5M", "latency=0.85ms"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("supernet") / "supernet.pt"
    train({"data": DATA, "batch_size": 16, "max_steps": 2, "seed": 1}, out)
    return out


def test_supernet_estimate_is_the_subnets_validation_top1(ckpt, monkeypatch):
    space = search_spaces.load(TINY)  # the search space: 1000 classes at 224; the supernet: 4 classes at 32
    estimator = make_estimator("supernet", space, supernet=str(ckpt))
    assert isinstance(estimator, SupernetEstimator) and estimator.name == "supernet"
    archs = [space.sample(i) for i in range(3)]
    values = estimator.estimate(archs)
    checkpoint = load_checkpoint(ckpt)
    net, data = checkpoint.model(), checkpoint.data()
    assert values == [evaluate_subnet(net, checkpoint.adapt(a), data) for a in archs]
    calls = []
    monkeypatch.setattr("nas.estimate.supernet.evaluate_subnet", lambda *a, **k: calls.append(a) or 0.0)
    assert estimator.estimate(archs) == values and not calls  # cached by architecture id
    worst, scale = estimator.reference()
    assert scale > 0 and 0 <= worst <= 100


def test_predictor_wraps_the_supernet(ckpt):
    estimator = make_estimator("predictor", TINY, supernet=str(ckpt))
    assert isinstance(estimator, PredictorEstimator) and estimator.measured_source == "supernet"


def test_estimator_bad_input_is_one_line(ckpt, tmp_path):
    single = tmp_path / "one.pt"
    arch = search_spaces.load(TINY).smallest()
    train({"data": DATA, "batch_size": 16, "max_steps": 1, "arch": arch.to_dict()}, single)
    cases = [
        (dict(kind="supernet", space=TINY), "--supernet CKPT"),
        (dict(kind="supernet", space=TINY, supernet=str(single)), "one trained architecture"),
        (dict(kind="supernet", space="efficientformerv2", supernet=str(ckpt)), "cannot run architectures"),
        (dict(kind="supernet", space=TINY, supernet=str(tmp_path / "missing.pt")), "no such checkpoint"),
        (dict(kind="proxy", space=TINY, supernet=str(ckpt)), "not the proxy"),
    ]
    for kwargs, needle in cases:
        kind, space = kwargs.pop("kind"), kwargs.pop("space")
        with pytest.raises(BadInput) as info:
            make_estimator(kind, space, **kwargs)
        assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("accuracy", "strategy"),
    [
        ("supernet", "evolution"),
        ("supernet", "optuna"),
        ("supernet", "actions"),
        ("predictor", "evolution"),
    ],
)
def test_search_with_a_trained_supernet(ckpt, tmp_path, capsys, accuracy, strategy):
    out = tmp_path / "run"
    # the action search evaluates every shrinking action per step: a budget one step below the largest
    budget, trials = (["params=4.2M"], 30) if strategy == "actions" else (BUDGET, 6)
    code = main(
        [
            "search",
            "--space",
            TINY,
            "--budget",
            *budget,
            "--accuracy",
            accuracy,
            "--supernet",
            str(ckpt),
            "--strategy",
            strategy,
            "--trials",
            str(trials),
            "--population",
            "3",
            "--out",
            str(out),
            "-q",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["evaluated"] <= trials and result["pareto"]
    assert {e["accuracy_source"] for e in result["pareto"]} <= {"supernet", "predictor"}
    assert all(0 <= e["accuracy"] <= 100 for e in result["pareto"])
    # the run's settings name the checkpoint, so --resume rebuilds the same estimator
    assert main(["search", "--out", str(out), "--resume", "--trials", str(trials + 1), "-q", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evaluated"] <= trials + 1


def test_without_space_the_search_runs_in_the_supernets_space(ckpt, tmp_path, capsys):
    code = main(
        [
            "search",
            "--budget",
            *BUDGET,
            "--accuracy",
            "supernet",
            "--supernet",
            str(ckpt),
            "--trials",
            "3",
            "--out",
            str(tmp_path / "run"),
            "-q",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["space"] == TINY
    assert f"searching space {TINY}, the one the --supernet checkpoint was trained on" in captured.err
