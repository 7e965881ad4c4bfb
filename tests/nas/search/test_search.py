"""The search: Pareto fronts and hypervolume, strategies, run files, resume, shared storage."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import search_spaces
import supernet
from nas import BadInput
from nas.budget import Budget
from nas.estimate import SyntheticAccuracy
from nas.pareto import Normaliser, crowding_distance, hypervolume, pareto_mask, pareto_ranks, parse_objectives
from nas.search import run_result, search

ROOT = Path(__file__).resolve().parents[3]
TINY = "efficientformerv2-tiny"
DEVICE = "iphone12-coreml"


def nas_cli(*args: str, env_extra: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, env=env, **kwargs)


# ---- Pareto, crowding, hypervolume on known sets --------------------------------------------------
def test_pareto_mask_and_ranks_on_a_known_set():
    costs = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [2, 2], [6, 6]], dtype=float)
    assert pareto_mask(costs).tolist() == [True, True, True, False, False, False]  # the repeat of [2,2] is not kept
    assert pareto_ranks(costs).tolist() == [0, 0, 0, 1, 0, 2]


def test_crowding_distance_by_hand():
    costs = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(costs)
    assert np.isinf(d[0]) and np.isinf(d[3])
    # row 1: (3-0)/4 + (4-1)/4 = 1.5; row 2: (4-1)/4 + (2-0)/4 = 1.25
    assert d[1] == pytest.approx(1.5) and d[2] == pytest.approx(1.25)


def test_hypervolume_of_small_known_sets():
    assert hypervolume(np.array([[0.5, 0.5]])) == pytest.approx(0.25)
    # two boxes of area 2 overlapping in area 1, reference (3, 3)
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), reference=[3, 3]) == pytest.approx(3.0)
    # 3-D: union of [0.5,1]^3 (0.125) and [0.2,1]x[0.8,1]x[0.8,1] (0.032) minus overlap [0.5,1]x[0.8,1]^2 (0.02)
    assert hypervolume(np.array([[0.5, 0.5, 0.5], [0.2, 0.8, 0.8]])) == pytest.approx(0.137)
    # points beyond the reference add nothing; an empty front has none
    assert hypervolume(np.array([[0.5, 1.2]])) == 0.0 and hypervolume(np.zeros((0, 2))) == 0.0


def test_normaliser_maps_budgets_and_accuracy_to_the_unit_box():
    norm = Normaliser(
        ("accuracy", "latency", "params", "mes"),
        {"accuracy": 60.0, "latency": 2.0, "params": 4e6, "mes": 50.0},
        accuracy_scale=20.0,
    )
    z = norm.costs([{"accuracy": 70.0, "latency_ms": 1.0, "params": 3e6, "mes": 100.0}])
    assert z.tolist() == [[0.5, 0.5, 0.75, 0.5]]
    assert norm.to_dict() == {"accuracy": 60.0, "latency_ms": 2.0, "params": 4e6, "mes": 50.0}


def test_parse_objectives():
    assert parse_objectives("accuracy, latency,params") == ("accuracy", "latency", "params")
    assert parse_objectives("acc,mes") == ("accuracy", "mes")
    for bad, word in (("accuracy,speed", "speed"), ("accuracy", "at least two"), ("params,params", "once")):
        with pytest.raises(BadInput, match=word):
            parse_objectives(bad)


# ---- strategies on the enumerable space ---------------------------------------------------------
BUDGET = {"params": 2.5e6, "latency_ms": 0.85}


def _dominates(a: dict, b: dict) -> bool:
    pairs = [(a["accuracy"], b["accuracy"]), (-a["latency_ms"], -b["latency_ms"]), (-a["params"], -b["params"])]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


@pytest.mark.parametrize(
    "strategy,sampler", [("evolution", "nsga2"), ("optuna", "nsga2"), ("optuna", "tpe"), ("optuna", "random")]
)
def test_every_front_entry_is_within_budget_and_none_dominates_another(tiny, lut, strategy, sampler):
    result = search(
        tiny,
        BUDGET,
        lut=lut,
        estimator=SyntheticAccuracy(tiny),
        trials=150,
        seed=1,
        strategy=strategy,
        sampler=sampler,
        population=20,
    )
    assert result.evaluated == 150
    assert result.pareto and result.hypervolume > 0
    budget = Budget(**BUDGET)
    for e in result.pareto:
        assert budget.satisfied(e) and e["accuracy_source"] == "synthetic"
        assert tiny.contains(search_spaces.Arch.from_dict(e["arch"]))
    for a in result.pareto:
        assert not any(_dominates(b, a) for b in result.pareto if b is not a)
    # the front is the non-dominated set of all feasible trials, recomputed by brute force
    feasible = [e for e in result.history if e.feasible]
    best = [e for e in feasible if not any(_dominates(o, e) for o in feasible)]
    assert {e.id for e in best} == {search_spaces.Arch.from_dict(e["arch"]).id for e in result.pareto}
    assert [e["latency_ms"] for e in result.pareto] == sorted(e["latency_ms"] for e in result.pareto)


def test_evolution_evaluates_only_feasible_architectures_and_never_twice(tiny, lut):
    result = search(tiny, BUDGET, lut=lut, estimator=SyntheticAccuracy(tiny), trials=200, seed=0, population=20)
    assert all(e.feasible for e in result.history)
    ids = [e.id for e in result.history]
    assert len(set(ids)) == len(ids) == 200


@pytest.mark.slow
def test_surrogate_guided_generations_reach_the_exhaustive_front(tiny, lut):
    """On a smooth accuracy, the picks by expected hypervolume improvement find nearly all of the
    exhaustive front's hypervolume in 300 trials, and clearly more than evolution without them."""
    from nas.estimate import enumerate_codes
    from nas.search import SpaceProblem, front
    from nas.search.strategies import Evolution, SurrogateGuidance

    smooth = SyntheticAccuracy(tiny, ripple=0.0)
    budget = Budget(params=2.5e6, latency_ms=0.85)
    problem = SpaceProblem(tiny, lut, budget, smooth, ("accuracy", "latency", "params"))
    codes = enumerate_codes(tiny)
    params, latency = supernet.count_tables(tiny)["params"].total(codes)[0], lut.predict_codes(codes, tiny)
    ok = (params <= budget.params) & (latency <= budget.latency_ms)
    costs = problem.costs(
        [{"accuracy": a, "latency_ms": t, "params": p} for a, t, p in zip(smooth.scores(codes[ok]), latency[ok], params[ok])]
    )
    exhaustive = hypervolume(costs[pareto_mask(costs)])
    shares = {}
    for model_share in (0.8, 0.0):
        strategy = Evolution(20, guidance=SurrogateGuidance(share=model_share))
        result = search(tiny, budget, lut=lut, estimator=smooth, trials=300, seed=0, strategy=strategy)
        shares[model_share] = front(result.history, problem.normaliser)[1] / exhaustive
    assert shares[0.8] > 0.98 and shares[0.8] > shares[0.0] + 0.03, shares


def test_optuna_records_infeasible_trials_without_estimating_accuracy(tiny, lut):
    result = search(
        tiny,
        {"params": 1.8e6},
        lut=lut,
        estimator=SyntheticAccuracy(tiny),
        trials=60,
        seed=0,
        strategy="optuna",
        sampler="random",
    )
    infeasible = [e for e in result.history if not e.feasible]
    assert infeasible, "random sampling of the tiny space should propose some architectures over 1.8M parameters"
    assert all(e.accuracy is None and e["params"] > 1.8e6 and e.violations for e in infeasible)
    assert all(e["params"] <= 1.8e6 for e in result.pareto)


def test_same_seed_same_front_and_other_seed_other_history(tiny, lut):
    runs = [
        search(tiny, BUDGET, lut=lut, estimator=SyntheticAccuracy(tiny), trials=120, seed=seed, population=20)
        for seed in (3, 3, 4)
    ]
    assert runs[0].to_dict() == runs[1].to_dict()
    assert [e.id for e in runs[0].history] != [e.id for e in runs[2].history]


def test_actions_shrink_from_the_largest_until_the_budget_holds(tiny, lut):
    problem_budget = {"params": 1.6e6}
    est = SyntheticAccuracy(tiny)
    result = search(tiny, problem_budget, lut=lut, estimator=est, strategy="actions", seed=0)
    history = result.history
    assert history[0].id == tiny.largest().id and history[0].extra["action"] == "start"
    # follow the path: at each step every shrinking action of the current architecture that raises its MES was
    # evaluated (one that lowers it, such as a costlier mixer, never is), and the next one is the action with the
    # least accuracy drop per MES gained
    from nas.evaluate import evaluate

    by_id = {e.id: e for e in history}
    steps = sorted({e.extra["step"] for e in history})
    current, path = history[0], [history[0]]
    for step in steps[1:]:
        actions = [a for _, a in tiny.shrink_actions(current.arch)]
        assert all(evaluate(a, lut=lut)["mes"] <= current["mes"] for a in actions if a.id not in by_id)
        candidates = [by_id[a.id] for a in actions if a.id in by_id]
        assert all(e.accuracy is not None for e in candidates)
        assert all(e.extra["parent"] == current.number for e in candidates if e.extra["step"] == step)
        gains = [(e, e["mes"] - current["mes"]) for e in candidates if e["mes"] > current["mes"]]
        current = min(gains, key=lambda eg: (current.accuracy - eg[0].accuracy) / eg[1])[0]
        path.append(current)
    assert len(path) > 2 and path[-1].feasible and not any(e.feasible for e in path[:-1])
    assert result.pareto and all(e["params"] <= 1.6e6 for e in result.pareto)


def test_a_jointly_infeasible_budget_stops_with_exit_3_not_a_loop(tiny, lut):
    from nas import Infeasible

    with pytest.raises(Infeasible, match="smallest achievable"):
        search(tiny, {"params": 1e5}, lut=lut, estimator=SyntheticAccuracy(tiny), trials=10)


# ---- the command line: run files, pareto, resume, shared storage ---------------------------------
CLI_FAST = ["--space", TINY, "--device", DEVICE, "--proxy", "params"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_search_writes_the_run_files_and_pareto_reprints_them(tmp_path):
    run = tmp_path / "run"
    done = nas_cli(
        "search",
        "--budget",
        "params=2.5M",
        "latency=0.85ms",
        "--trials",
        "40",
        "--out",
        str(run),
        "--population",
        "10",
        *CLI_FAST,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in (
        "run",
        "space",
        "device",
        "device_provenance",
        "strategy",
        "budget",
        "evaluated",
        "feasible",
        "hypervolume",
        "pareto",
    ):
        assert key in result
    assert result["budget"] == {"params": 2500000, "latency_ms": 0.85} and result["evaluated"] == 40
    assert result["device_provenance"] == "estimated" and result["strategy"] == "evolution"
    entry = result["pareto"][0]
    assert set(entry) == {"id", "arch", "params", "macs", "latency_ms", "latency_error_ms", "mes", "accuracy", "accuracy_source"}
    assert entry["id"].startswith(str(run) + "#") and entry["accuracy_source"] == "proxy:params"
    assert json.loads((run / "pareto.json").read_text()) == result
    import yaml

    info = yaml.safe_load((run / "run.yaml").read_text())
    assert "nas search --budget" in info["command"] and info["settings"]["seed"] == 0 and "torch" in info["versions"]
    assert (run / "study.db").is_file()
    again = nas_cli("pareto", str(run), "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == result
    table = nas_cli("pareto", str(run))
    assert "latency ms" in table.stdout and "ESTIMATED" in table.stdout
    # the entry ids resolve as architectures elsewhere in the CLI
    shown = nas_cli("arch", "show", entry["id"], "--device", DEVICE, "--json")
    assert shown.returncode == 0, shown.stderr and json.loads(shown.stdout)["params"] == entry["params"]


@pytest.mark.subprocess
def test_cli_infeasible_budget_exits_3_naming_the_smallest_values(tmp_path):
    done = nas_cli("search", "--budget", "params=100K", "--out", str(tmp_path / "r"), *CLI_FAST)
    assert done.returncode == 3
    assert "smallest achievable" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "args,word",
    [
        (["--budget", "params=3Q"], "params=3Q"),
        (["--budget", "speed=1"], "speed"),
        (["--budget", "params=3M", "--objectives", "accuracy,foo"], "foo"),
        (["--budget", "params=3M", "--mes-alpha", "latency=x"], "mes-alpha"),
        (["--budget", "params=3M", "--trials", "0"], "trials"),
    ],
)
def test_cli_bad_search_input_is_one_line_exit_2(tmp_path, args, word):
    done = nas_cli("search", *args, "--out", str(tmp_path / "r"), *CLI_FAST)
    assert done.returncode == 2 and word in done.stderr and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_refuses_to_mix_a_new_run_into_an_old_one(tmp_path):
    run = tmp_path / "run"
    assert nas_cli("search", "--budget", "params=2.5M", "--trials", "5", "--out", str(run), *CLI_FAST).returncode == 0
    again = nas_cli("search", "--budget", "params=2.5M", "--trials", "5", "--out", str(run), *CLI_FAST)
    assert again.returncode == 2 and "--resume" in again.stderr
    other = nas_cli("search", "--budget", "params=2M", "--trials", "9", "--out", str(run), "--resume", *CLI_FAST)
    assert other.returncode == 2 and "budget" in other.stderr


def _complete_trials(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT t.number, a.value_json FROM trials t JOIN trial_user_attributes a "
            "ON a.trial_id = t.trial_id WHERE t.state = 'COMPLETE' AND a.key = 'arch_id' "
            "ORDER BY t.number"
        ).fetchall()
    return [(n, json.loads(v)) for n, v in rows]


@pytest.mark.slow
@pytest.mark.subprocess
def test_resume_after_sigkill_continues_without_lost_or_repeated_trials(tmp_path):
    trials, common = "120", ["--budget", "params=2.5M", "latency=0.85ms", "--population", "20", "--seed", "5", *CLI_FAST]
    reference = tmp_path / "ref"
    assert nas_cli("search", *common, "--trials", trials, "--out", str(reference)).returncode == 0
    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", "search", *common, "--trials", trials, "--out", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    db = run / "study.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if len(_complete_trials(db)) >= 30:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _complete_trials(db)
    assert 30 <= len(before) < 120, "the run should have been killed part-way"
    done = nas_cli("search", "--out", str(run), "--resume", "--json")
    assert done.returncode == 0, done.stderr
    after = _complete_trials(db)
    assert after[: len(before)] == before  # nothing lost or rewritten
    ids = [a for _, a in after]
    assert len(ids) == 120 and len(set(ids)) == 120  # the total, nothing evaluated twice
    # and the resumed run is the uninterrupted run: same architectures in the same order, same front
    assert ids == [a for _, a in _complete_trials(reference / "study.db")]
    assert json.loads(done.stdout)["pareto"] == [
        dict(e, id=e["id"].replace(str(reference), str(run))) for e in run_result(reference).to_dict()["pareto"]
    ]


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_workers_share_one_sqlite_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    common = [
        "search",
        "--budget",
        "params=2.5M",
        "--trials",
        "40",
        "--storage",
        url,
        "--study",
        "shared",
        "--population",
        "10",
        *CLI_FAST,
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.Popen(
        [sys.executable, "-m", "nas", *common, "--out", str(tmp_path / "a")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(1.0)
    second = nas_cli(*common, "--out", str(tmp_path / "b"), "--json")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (err, second.stderr)
    trials = _complete_trials(tmp_path / "shared.db")
    assert len(trials) == 40
    # a worker reports the study as it stands when its own share is done: the other may still be finishing
    assert json.loads(second.stdout)["evaluated"] <= 40
    a, b = run_result(tmp_path / "a").to_dict(), run_result(tmp_path / "b").to_dict()
    assert a["evaluated"] == b["evaluated"] == 40
    assert [e["arch"] for e in a["pareto"]] == [e["arch"] for e in b["pareto"]]


@pytest.mark.subprocess
def test_a_shared_worker_killed_before_its_run_file_resumes_with_the_studys_settings(tmp_path):
    """A worker of a shared study killed before it wrote ``run.yaml`` (it had only joined) resumes with
    ``--out DIR --resume --storage URL --study NAME``: the settings come from the study."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    shared = ["--storage", url, "--study", "shared"]
    first = nas_cli(
        "search",
        "--budget",
        "params=2.5M",
        "--trials",
        "12",
        "--population",
        "6",
        *shared,
        *CLI_FAST,
        "--out",
        str(tmp_path / "a"),
    )
    assert first.returncode == 0, first.stderr
    (tmp_path / "b").mkdir()  # the killed worker's directory, without its run file
    resumed = nas_cli("search", "--out", str(tmp_path / "b"), "--resume", "--trials", "20", *shared, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["evaluated"] == 20 and (tmp_path / "b" / "run.yaml").is_file()
    wrong = nas_cli("search", "--out", str(tmp_path / "c"), "--resume", "--storage", url, "--study", "other")
    assert wrong.returncode == 2 and "no study 'other'" in wrong.stderr


# ---- architecture-aware operators --------------------------------------------------------------
def test_neighbours_are_one_gene_away_and_shrink_actions_shrink(tiny):
    import supernet

    space = search_spaces.load("efficientformerv2")
    arch = space.preset("s0")
    neighbours = space.neighbours(arch)
    assert len({n.id for n in neighbours}) == len(neighbours) and arch not in neighbours
    assert all(space.contains(n) for n in neighbours)
    base = space.encode(arch)
    for n in neighbours:
        changed = [i for i, (a, b) in enumerate(zip(base, space.encode(n))) if a != b]
        names = {f"s{space.genes()[i].stage}.{space.genes()[i].field}" for i in changed}
        assert changed and (len(changed) == 1 or any(name.endswith("depth") for name in names)), names
    before = supernet.count(arch)
    for name, smaller in space.shrink_actions(arch):
        after = supernet.count(smaller)
        assert after.params < before.params or after.macs < before.macs, name
    assert {name.split(":")[0] for name, _ in space.shrink_actions(arch)} == {"A_N", "A_C", "A_E", "A_R"}


def test_mutation_swaps_mixers_to_sepvit_only_where_the_space_allows_it():
    from nas.search.plots import arch_summary

    space = search_spaces.load("efficientformerv2")
    arch = space.preset("s0")  # MHSA and none only
    reached: dict[int, int] = {}
    rng = random.Random(0)
    for _ in range(400):
        child = space.mutate(arch, rng, prob=0.2)
        assert space.contains(child)
        for s, mixers in enumerate(child.mixers, 1):
            reached[s] = reached.get(s, 0) + mixers.count("sepvit")
    assert all(reached[s] > 0 for s in (1, 2, 3)) and reached[4] == 0, reached
    summary = arch_summary(space.preset("s0_sepvit"))
    assert "s1 1×none + 1×sepvit" in summary and "s3 4×none + 2×sepvit" in summary, summary


@pytest.mark.ray
@pytest.mark.slow
def test_local_ray_runs_evaluate_as_tune_trials(tiny, lut, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    import optuna

    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(include_dashboard=False, num_cpus=2, _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")
    try:
        # evolution: each generation is a Tune experiment; the run equals the plain one
        args = dict(lut=lut, estimator=SyntheticAccuracy(tiny), trials=10, seed=2, population=5)
        with_ray = search(tiny, BUDGET, ray=True, out=tmp_path / "ray", **args)
        plain = search(tiny, BUDGET, **args)
        assert with_ray.evaluated == 10
        assert [e.id for e in with_ray.history] == [e.id for e in plain.history]
        assert [e.accuracy for e in with_ray.history] == [e.accuracy for e in plain.history]
        # optuna: a Tune searcher asks the run's own study, with constraints and named objectives
        result = search(
            tiny,
            BUDGET,
            ray=True,
            out=tmp_path / "optuna",
            strategy="optuna",
            lut=lut,
            estimator=SyntheticAccuracy(tiny),
            trials=8,
            seed=0,
            population=4,
        )
        assert result.evaluated == 8
        study = optuna.load_study(study_name="nas-search", storage=f"sqlite:///{tmp_path / 'optuna' / 'study.db'}")
        assert study.metric_names == ["accuracy", "latency", "params"]
        trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(trials) == 8 and all("arch" in t.user_attrs and "constraints:params" in t.system_attrs for t in trials)
        truth = SyntheticAccuracy(tiny)
        for e in result.history:
            assert e.accuracy == (truth.estimate([e.arch])[0] if e.feasible else None)
    finally:
        ray.shutdown()


# ---- the predictor's pre-screening ----------------------------------------------------------------
def test_predictor_ranks_unseen_architectures_after_learning(tiny):
    from scipy.stats import spearmanr

    from nas.estimate import PredictorEstimator

    truth = SyntheticAccuracy(tiny)
    predictor = PredictorEstimator(truth, tiny, warmup=20)
    archs = [tiny.sample(np.random.default_rng(i)) for i in range(300)]
    assert predictor.predict(archs[:5]) is None  # nothing measured yet
    predictor.estimate(archs[:200])
    assert predictor.measured == 200
    held_out = archs[200:]
    rho = spearmanr(predictor.predict(held_out), truth.estimate(held_out)).statistic
    assert rho > 0.8, rho


def test_predictor_search_measures_only_promising_candidates(tiny, lut):
    from nas.estimate import PredictorEstimator

    truth = SyntheticAccuracy(tiny)
    budget = Budget.parse(["params=2.5M", "latency=0.85ms"])

    def run():
        predictor = PredictorEstimator(truth, tiny, warmup=30)
        return predictor, search(tiny, budget, lut=lut, estimator=predictor, trials=200, seed=3)

    predictor, result = run()
    sources = [e.source for e in result.history if e.accuracy is not None]
    assert result.evaluated == 200 and set(sources) == {"synthetic", "predictor"}
    assert predictor.measured == sources.count("synthetic") < 170  # the screen saved measurements
    for e in result.history:  # measured values are the truth; predictions are labelled as such
        if e.source == "synthetic":
            assert e.accuracy == pytest.approx(truth.estimate([e.arch])[0])
    _, again = run()
    assert [e.id for e in again.history] == [e.id for e in result.history]
    assert [e.accuracy for e in again.history] == [e.accuracy for e in result.history]


def test_settings_are_checked_when_made():
    from nas.search import SearchSettings

    with pytest.raises(TypeError):
        SearchSettings(trails=10)
    for bad, word in (
        ({"seed": -1}, "--seed"),
        ({"trials": 0}, "--trials"),
        ({"strategy": "annealing"}, "annealing"),
        ({"proxy": "zen"}, "zen"),
        ({"objectives": "accuracy"}, "at least two"),
    ):
        with pytest.raises(BadInput, match=word):
            SearchSettings(**bad)
    settings = SearchSettings(budget="params=3M latency=1ms", trials=20)
    assert SearchSettings.from_dict(settings.to_dict()) == settings
    assert settings.resumed({"trials": 40, "seed": 0}).trials == 40
    with pytest.raises(BadInput, match="--seed 1 differs"):
        settings.resumed({"seed": 1})


def test_evolution_operators_are_objects_with_their_own_settings(tiny, lut):
    from nas.search.strategies import Crossover, Evolution, Mutation

    args = dict(lut=lut, estimator=SyntheticAccuracy(tiny), trials=60, seed=0)
    plain = search(tiny, BUDGET, strategy=Evolution(10), **args)
    again = search(tiny, BUDGET, strategy=Evolution(10, crossover=Crossover(0.9), mutation=Mutation(0.1)), **args)
    assert [e.id for e in again.history] == [e.id for e in plain.history]  # the defaults, spelled out
    other = search(tiny, BUDGET, strategy=Evolution(10, mutation=Mutation(0.5), guidance=None, local_search=None), **args)
    assert [e.id for e in other.history] != [e.id for e in plain.history]
    assert (
        other.settings["strategy_config"]["mutation"] == {"prob": 0.5} and other.settings["strategy_config"]["guidance"] is None
    )


def test_runs_stored_before_metrics_had_attributes_of_their_own_still_read(tiny):
    from nas.search.runs import entry_from_attrs

    arch = tiny.smallest()
    old = {
        "arch": arch.to_dict(),
        "arch_id": arch.id,
        "search": {"generation": 3},
        "metrics": {
            "params": 1.0e6,
            "macs": 2e8,
            "latency_ms": 0.5,
            "mes": 100.0,
            "accuracy": 70.0,
            "accuracy_source": "proxy:naswot",
            "feasible": True,
            "violations": [],
        },
    }
    entry = entry_from_attrs(7, old, lambda data, where: search_spaces.Arch.from_dict(data, source=where))
    assert entry.candidate == arch and entry.number == 7 and entry.feasible and entry.source == "proxy:naswot"
    assert entry.metrics == {"params": 1.0e6, "macs": 2e8, "latency_ms": 0.5, "mes": 100.0, "accuracy": 70.0}
    assert entry.extra == {"generation": 3}


def test_progress_knows_its_total_from_the_start_and_ends_current(tiny, lut):
    calls = []
    result = search(
        tiny,
        BUDGET,
        lut=lut,
        estimator=SyntheticAccuracy(tiny),
        trials=40,
        seed=0,
        population=10,
        progress=lambda done, total, what, **figures: calls.append((done, total, what, figures)),
    )
    assert calls[0][:3] == (0, 40, "search")  # before any set-up work
    assert all(total == 40 and what == "search" for _, total, what, _ in calls)
    done, _, _, figures = calls[-1]
    assert done == result.evaluated == 40
    assert figures["front"] == len(result.pareto) and figures["HV"] == f"{result.hypervolume:.4f}"
    assert figures["feasible"] == f"{result.feasible / result.evaluated:.0%}"


def test_a_copied_or_moved_run_reads_and_resumes_its_own_trials(tiny, lut, tmp_path):
    import shutil

    args = dict(lut=lut, estimator=SyntheticAccuracy(tiny), seed=0, population=10)
    first = search(tiny, BUDGET, trials=20, out=tmp_path / "a", **args)
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    grown = search(tiny, BUDGET, trials=30, out=tmp_path / "copy", resume=True, **args)
    assert grown.evaluated == 30 and run_result(tmp_path / "a").evaluated == 20  # the copy wrote to its own study
    shutil.move(tmp_path / "a", tmp_path / "moved")
    moved = run_result(tmp_path / "moved")
    assert moved.evaluated == 20 and [e.id for e in moved.history] == [e.id for e in first.history]
    assert search(tiny, BUDGET, trials=25, out=tmp_path / "moved", resume=True, **args).evaluated == 25


def test_a_resumed_action_search_evaluates_nothing_again(tiny, lut, tmp_path):
    args = dict(lut=lut, estimator=SyntheticAccuracy(tiny), seed=0, strategy="actions", out=tmp_path / "run")
    done = search(tiny, {"params": 1.6e6}, **args)
    again = search(tiny, {"params": 1.6e6}, resume=True, **args)
    assert again.evaluated == done.evaluated and again.to_dict()["pareto"] == done.to_dict()["pareto"]
