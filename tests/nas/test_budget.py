"""Budgets: parsing good and bad tokens, checking metrics, and failing fast on an unreachable budget."""

from __future__ import annotations

import random

import pytest

import latency_lut
import search_spaces
import supernet
from nas.budget import Budget, check_feasible, smallest_achievable
from nas.errors import BadInput, Infeasible

SPACE = search_spaces.load("efficientformerv2")


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (["params=3M", "latency=1ms"], {"params": 3_000_000, "latency_ms": 1.0}),
        (["PARAMS=3m", "Latency=800US"], {"params": 3_000_000, "latency_ms": 0.8}),
        (["macs=400M", "mes=50"], {"macs": 400_000_000, "mes": 50.0}),
        (["params=2.5M,latency=0.002s"], {"params": 2_500_000, "latency_ms": 2.0}),
        (["params=3000000 macs=1.2G"], {"params": 3_000_000, "macs": 1_200_000_000}),
        (["latency=1.5"], {"latency_ms": 1.5}),
        (["size=12k"], {"params": 12_000}),
        (["latency=900µs"], {"latency_ms": 0.9}),
    ],
)
def test_parse_good_budgets(tokens, expected):
    assert Budget.parse(tokens).to_dict() == pytest.approx(expected)


@pytest.mark.parametrize(
    "tokens, needle",
    [
        ([], "empty budget"),
        ([""], "empty budget"),
        (["params"], "'params'"),
        (["flops=3G"], "'flops=3G'"),
        (["params=-3M"], "'params=-3M'"),
        (["params=0"], "positive"),
        (["params=3X"], "3X"),
        (["latency=1min"], "1min"),
        (["latency=fast"], "fast"),
        (["mes=high"], "high"),
        (["params=3M", "params=4M"], "twice"),
    ],
)
def test_parse_bad_budgets_name_the_token_and_show_an_example(tokens, needle):
    with pytest.raises(BadInput, match=needle) as info:
        Budget.parse(tokens)
    message = str(info.value)
    assert "\n" not in message and any(hint in message for hint in ("e.g.", "such as", "twice", "positive"))


def test_violations_and_satisfied():
    budget = Budget.parse(["params=3M", "latency=1ms", "mes=60"])
    ok = {"params": 2.9e6, "macs": 4e8, "latency_ms": 0.9, "mes": 101.0}
    assert budget.satisfied(ok) and budget.violations(ok) == []
    bad = {"params": 3.6e6, "macs": 4e8, "latency_ms": 1.2, "mes": 50.0}
    problems = budget.violations(bad)
    assert len(problems) == 3 and problems[0].startswith("params=") and "mes=" in problems[2]
    assert str(budget) == "params<=3,000,000 latency<=1ms mes>=60"


def test_smallest_achievable_is_below_every_sampled_architecture():
    lut = latency_lut.load("iphone12-coreml")
    minima = smallest_achievable(SPACE, lut)
    archs = [SPACE.sample(random.Random(i)) for i in range(500)]
    assert minima["params"][0] <= min(supernet.count(a).params for a in archs)
    assert minima["params"][0] == supernet.count(minima["params"][1]).params
    assert minima["macs"][0] == supernet.count(minima["macs"][1]).macs
    assert minima["latency_ms"][0] <= lut.predict_many(archs).min()


def test_infeasible_budget_names_the_smallest_achievable_values():
    lut = latency_lut.load("iphone12-coreml")
    with pytest.raises(Infeasible, match=r"params <= 100000 \(smallest achievable: 666,096\)") as info:
        check_feasible(Budget.parse(["params=100K", "latency=0.1ms"]), SPACE, lut)
    assert "latency_ms <= 0.1 (smallest achievable" in str(info.value) and info.value.exit_code == 3
    with pytest.raises(Infeasible, match="mes >= 10000"):
        check_feasible(Budget.parse(["mes=10000"]), SPACE, lut)
    minima = check_feasible(Budget.parse(["params=3M", "latency=1ms"]), SPACE, lut)
    assert minima["params"][0] < 3e6 and minima["latency_ms"][0] < 1.0
    with pytest.raises(BadInput, match="latency table"):
        check_feasible(Budget.parse(["latency=1ms"]), SPACE, None)
