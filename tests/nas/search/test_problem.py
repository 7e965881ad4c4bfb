"""A problem of one's own: a tabular benchmark (accuracy and latency looked up per encoding) searched
through the Python API with every strategy, against its exhaustive front; stored, read back, resumed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas.budget import Budget
from nas.estimate import Estimator
from nas.pareto import STANDARD_OBJECTIVES, hypervolume, pareto_mask
from nas.search import Problem, front, run_result, search
from search_spaces import Gene

CHOICES = (4, 3, 5, 3)  # 180 candidates
LATENCY_LIMIT = 2.5  # 118 of the 180 candidates within it


def _tables() -> tuple[dict, dict]:
    rng = np.random.default_rng(7)
    weights = np.array([0.35, 0.5, 0.2, 0.45])
    latency, accuracy = {}, {}
    for codes in itertools.product(*(range(n) for n in CHOICES)):
        c = np.array(codes)
        latency[codes] = float(0.3 + weights @ c + 0.05 * rng.random())
        accuracy[codes] = float(60 + 30 * (1 - np.exp(-(np.array([0.6, 0.4, 0.3, 0.5]) @ c) / 2)) + rng.normal(0, 0.5))
    return latency, accuracy


LATENCY, ACCURACY = _tables()


class Lookup(Estimator):
    """The benchmark's trained accuracy, looked up."""

    name = "lookup"
    unit = "top-1 %"

    def __init__(self):
        self.calls = 0

    def estimate(self, candidates):
        self.calls += len(candidates)
        return [ACCURACY[c] for c in candidates]

    def reference(self):
        worst, best = min(ACCURACY.values()), max(ACCURACY.values())
        return worst, best - worst


class Tabular(Problem):
    """Candidates are tuples of choice indices; latency is a cheap objective, accuracy the expensive one."""

    name = "tabular"

    def __init__(self):
        self.objectives = (STANDARD_OBJECTIVES["accuracy"], STANDARD_OBJECTIVES["latency"])
        self.budget = Budget(latency_ms=LATENCY_LIMIT)
        self.reference = {"latency": LATENCY_LIMIT}
        self.estimator = Lookup()

    def genes(self):
        return [Gene(f"g{i}", tuple(range(n))) for i, n in enumerate(CHOICES)]

    def decode(self, codes):
        return tuple(int(c) for c in codes)

    def encode(self, candidate):
        return list(candidate)

    def metrics(self, candidates):
        return [{"latency_ms": LATENCY[c]} for c in candidates]

    def start(self):
        return tuple(n - 1 for n in CHOICES)

    def shrink_actions(self, candidate):
        return [(f"g{i}-1", candidate[:i] + (c - 1,) + candidate[i + 1 :]) for i, c in enumerate(candidate) if c > 0]

    def best_achievable(self):
        return {"latency_ms": min(LATENCY.values())}


@pytest.fixture(scope="module")
def exhaustive() -> tuple[set, float]:
    """The exhaustive front (its candidates) and hypervolume."""
    problem = Tabular()
    feasible = [c for c in LATENCY if LATENCY[c] <= LATENCY_LIMIT]
    rows = [{"latency_ms": LATENCY[c], "accuracy": ACCURACY[c]} for c in feasible]
    costs = problem.costs(rows)
    mask = pareto_mask(costs)
    return {c for c, keep in zip(feasible, mask) if keep}, hypervolume(costs[mask])


@pytest.mark.parametrize(
    "strategy,sampler,trials,share",
    [
        ("evolution", "nsga2", 80, 0.97),
        ("optuna", "nsga2", 100, 0.85),
        ("optuna", "tpe", 80, 0.8),
        ("optuna", "random", 100, 0.8),
    ],
)
def test_every_strategy_searches_a_tabular_problem(exhaustive, strategy, sampler, trials, share):
    best, best_hv = exhaustive
    problem = Tabular()
    result = search(problem, trials=trials, seed=0, strategy=strategy, sampler=sampler, population=10)
    assert result.evaluated == trials and result.space == "tabular"
    feasible = [e for e in result.history if e.feasible]
    assert all(e["latency_ms"] <= LATENCY_LIMIT for e in feasible)
    assert all(e.accuracy == ACCURACY[e.candidate] for e in feasible)
    assert all(e.accuracy is None for e in result.history if not e.feasible)  # never estimated over budget
    assert problem.estimator.calls <= len({e.id for e in feasible}) + 2  # + the reference's two
    # the front is the non-dominated set of what was evaluated, and lies on or behind the exhaustive one
    entries, hv = front(result.history, problem.normaliser)
    assert hv == pytest.approx(result.hypervolume) and 0 < hv <= best_hv + 1e-12
    assert hv / best_hv >= share, (strategy, sampler, hv / best_hv)
    on_front = {tuple(e["arch"]) for e in result.pareto}
    assert on_front == {e.candidate for e in entries}
    assert len(on_front & best) >= 0.5 * len(on_front)


def test_actions_shrink_the_largest_candidate_until_it_fits():
    result = search(Tabular(), strategy="actions", seed=0)
    history = result.history
    assert history[0].candidate == Tabular().start() and history[0].extra["action"] == "start"
    assert not history[0].feasible and any(e.feasible for e in history)
    assert result.pareto and all(e["latency_ms"] <= LATENCY_LIMIT for e in result.pareto)


def test_storage_read_back_and_resume_equal_one_run(tmp_path, exhaustive):
    whole = search(Tabular(), trials=60, seed=3, population=10, out=tmp_path / "whole")
    search(Tabular(), trials=30, seed=3, population=10, out=tmp_path / "parts")
    resumed = search(Tabular(), trials=60, seed=3, population=10, out=tmp_path / "parts", resume=True)
    assert [e.id for e in resumed.history] == [e.id for e in whole.history]
    assert resumed.to_dict()["pareto"] == [dict(e, id=e["id"].replace("whole", "parts")) for e in whole.to_dict()["pareto"]]
    back = run_result(tmp_path / "whole", problem=Tabular())
    assert back.to_dict() == whole.to_dict() and [e.candidate for e in back.history] == [e.candidate for e in whole.history]
    assert (tmp_path / "whole" / "pareto.json").is_file() and (tmp_path / "whole" / "run.yaml").is_file()


def test_an_impossible_budget_fails_fast():
    from nas import Infeasible

    problem = Tabular()
    problem.budget = Budget(latency_ms=0.1)
    with pytest.raises(Infeasible, match="latency_ms <= 0.1"):
        search(problem, trials=10)
