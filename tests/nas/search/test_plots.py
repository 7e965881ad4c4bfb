"""Inspecting and comparing Pareto fronts: plots (PNG, HTML), hypervolumes at a common reference point,
the run's storage as optuna-dashboard reads it."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

import search_spaces
from nas import BadInput
from nas.estimate import SyntheticAccuracy
from nas.pareto import Normaliser, common_normaliser, hypervolume
from nas.search import compare_runs, run_result, search
from nas.search.plots import figure_data, plot_fronts

TINY = "efficientformerv2-tiny"
DEVICE = "iphone12-coreml"
BUDGET = {"params": 2.5e6, "latency_ms": 0.85}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny, lut):
    """Three small runs on disk: `a` (80 evaluations), `early` (the same search stopped at 16, so its front
    is dominated by a's), `tight` (a smaller budget, hence another reference point)."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, budget, trials in (("a", BUDGET, 80), ("early", BUDGET, 16), ("tight", {"params": 2.0e6, "latency_ms": 0.8}, 60)):
        search(
            tiny,
            budget,
            lut=lut,
            estimator=SyntheticAccuracy(tiny),
            trials=trials,
            seed=0,
            population=16,
            out=root / name,
            command=f"test {name}",
        )
        made[name] = str(root / name)
    return made


def unescaped(html: str) -> str:
    """The page's text with plotly's JSON escapes (``\\u002f`` for "/", ``\\u003c`` for "<") undone."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), html)


# ---- the plots --------------------------------------------------------------------------------------------
def test_png_is_written_atomically_and_is_a_real_image(cli, runs, tmp_path):
    out = tmp_path / "front.png"
    code, stdout, _ = cli("pareto", runs["a"], "--plot", str(out))
    assert code == 0 and f"plot: {out}" in stdout
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 30_000
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.width >= 1000 and image.height >= 700
    assert [p.name for p in tmp_path.iterdir()] == ["front.png"]  # no temporary file left behind


def test_html_is_offline_plotly_with_each_front_entry_on_hover(cli, runs, tmp_path):
    out = tmp_path / "front.html"
    code, _, _ = cli("pareto", runs["a"], "--plot", str(out), "--x", "params", "--y", "latency")
    assert code == 0
    html = out.read_text(encoding="utf-8")
    assert "plotly" in html.lower() and len(html) > 1_000_000  # the library itself is embedded
    assert not re.search(r"<script[^>]*\bsrc=", html)  # nothing to fetch: it opens offline
    text = unescaped(html)
    front = run_result(runs["a"]).pareto
    for entry in front:
        assert f"{entry['id']}</b>" in text
    arch = front[0]["arch"]
    assert f"depths {'-'.join(map(str, arch['depths']))}" in text and "mixers: s1" in text
    assert "parameters (M)" in text and "latency (ms, ESTIMATED by the iphone12-coreml table; bars: its typical error ±" in text
    # the published models on axes the device table predicts (their accuracy would need the tiny space)
    assert "EfficientFormerV2-S0" in text and "budget params ≤ 2.5M" in text


def test_plot_data_front_staircase_budgets_and_infeasible_points(tiny, lut):
    result = search(
        tiny, BUDGET, lut=lut, estimator=SyntheticAccuracy(tiny), trials=60, seed=2, strategy="optuna", sampler="random"
    )
    assert result.feasible < result.evaluated  # random sampling leaves over-budget trials
    data = figure_data([result], "latency", "params", references=False)
    run = data.runs[0]
    assert len(run.front.x) == len(result.pareto) and len(run.front.x) + len(run.others.x) == result.feasible
    assert len(run.infeasible.x) == result.evaluated - result.feasible and run.unplaced_infeasible == 0
    assert {(w, v) for w, v, _ in data.budgets} == {("x", 0.85), ("y", 2.5)}
    # the staircase joins the 2-D front of the plotted pair: latency (minimised) against accuracy (maximised)
    run = figure_data([result], "latency", "accuracy", references=False).runs[0]
    corners = list(zip(run.stair_x[::2], run.stair_y[::2]))
    assert len(corners) >= 3 and all(x0 < x1 and y0 < y1 for (x0, y0), (x1, y1) in zip(corners, corners[1:]))
    assert run.stair_x[1::2] == run.stair_x[2::2] and run.stair_y[1::2] == run.stair_y[:-1:2]  # right, then up
    feasible = list(zip(run.front.x + run.others.x, run.front.y + run.others.y))
    for cx, cy in corners:  # no feasible point dominates a corner, and every one is on or below the stairs
        assert not any(x <= cx and y >= cy and (x, y) != (cx, cy) for x, y in feasible)
    assert all(any(x >= cx and y <= cy for cx, cy in corners) for x, y in feasible)
    flipped = figure_data([result], "accuracy", "latency", references=False).runs[0]  # x maximised: up, then right
    assert sorted(zip(flipped.stair_y[::2], flipped.stair_x[::2])) == sorted(corners)
    assert flipped.stair_x[1::2] == flipped.stair_x[:-1:2] and flipped.stair_y[1::2] == flipped.stair_y[2::2]
    # on an accuracy axis, over-budget trials (never estimated) cannot be placed, and say so
    data = figure_data([result], "latency", "accuracy", references=False)
    assert not data.runs[0].infeasible.x and data.runs[0].unplaced_infeasible == result.evaluated - result.feasible
    assert "accuracy (top-1 %, estimated by synthetic)" == data.y_label


def test_reference_models_take_the_runs_estimator_only_where_it_can_score_them(lut):
    space = search_spaces.load("efficientformerv2")
    estimator = SyntheticAccuracy(space)
    result = search(space, {"params": 3e6, "latency_ms": 1.0}, lut=lut, estimator=estimator, trials=12, seed=0, population=6)
    data = figure_data([result], "latency", "accuracy", estimator=estimator)
    expected = estimator.estimate([space.preset(p) for p in ("s0", "s1", "s2", "l")])
    assert [p["label"] for p in data.references] == ["S0", "S1", "S2", "L"]
    assert [p["y"] for p in data.references] == pytest.approx(expected)
    assert [p["x"] for p in data.references] == pytest.approx([lut.predict(space.preset(p)) for p in ("s0", "s1", "s2", "l")])
    assert "synthetic estimate" in data.reference_label
    # the search was handed its estimator: it cannot be rebuilt from the settings, so no accuracy is invented
    data = figure_data([result], "latency", "accuracy")
    assert not data.references and any("handed to the search" in n for n in data.notes)
    assert len(figure_data([result], "macs", "params").references) == 4  # no accuracy needed


def test_axes_are_validated(one_line_error, cli, runs, tmp_path):
    plot = tmp_path / "f.png"
    one_line_error(
        *cli("pareto", runs["a"], "--plot", str(plot), "--x", "speed"), "speed", "accuracy", "latency", "params", "macs", "mes"
    )
    one_line_error(*cli("pareto", runs["a"], "--plot", str(plot), "--x", "params", "--y", "params"), "--x and --y")
    one_line_error(*cli("pareto", runs["a"], "--y", "mes"), "--plot")
    assert not plot.exists()
    with pytest.raises(BadInput, match="--y"):
        figure_data([run_result(runs["a"])], "latency", "speed")


@pytest.mark.parametrize(
    "name,words", [("front.svg", [".png", ".html"]), ("missing-dir/front.png", ["does not exist"]), ("", [])]
)
def test_bad_plot_paths_are_one_line_errors(one_line_error, cli, runs, tmp_path, name, words):
    path = tmp_path / name if name else tmp_path  # "" -> the path is a directory
    code, out, err = cli("pareto", runs["a"], "--plot", str(path))
    one_line_error(code, out, err, "--plot", *words)
    assert not list(tmp_path.glob("**/*.partial"))


# ---- comparing runs -----------------------------------------------------------------------------------------
def test_common_reference_is_the_worst_of_the_runs_references():
    a = Normaliser(("accuracy", "latency", "params", "mes"), {"accuracy": 60.0, "latency": 1.0, "params": 3e6, "mes": 50.0}, 20.0)
    b = Normaliser(("accuracy", "latency", "params", "mes"), {"accuracy": 55.0, "latency": 2.0, "params": 2e6, "mes": 80.0}, 25.0)
    common = common_normaliser([a, b])
    assert common.reference == {"accuracy": 55.0, "latency": 2.0, "params": 3e6, "mes": 50.0}
    assert common.accuracy_scale == 25.0
    # each run's own reference point lies inside the common box (normalised, <= 1 everywhere)
    for n in (a, b):
        raw = {
            "accuracy": n.reference["accuracy"],
            "latency_ms": n.reference["latency"],
            "params": n.reference["params"],
            "mes": n.reference["mes"],
        }
        assert np.all(common.costs([raw]) <= 1.0)
    assert common_normaliser([a, a]) == a
    with pytest.raises(BadInput, match="objectives differ"):
        common_normaliser([a, Normaliser(("accuracy", "latency"), {"accuracy": 60.0, "latency": 1.0})])


def test_hypervolumes_at_a_common_reference(runs):
    a, early, tight = (run_result(runs[k]) for k in ("a", "early", "tight"))
    same = compare_runs([a, a])
    assert same["hypervolumes"][0] == same["hypervolumes"][1] == pytest.approx(a.hypervolume)
    assert same["common_reference"] == a.reference
    # the same search stopped early: its front is dominated by the full run's, and its hypervolume is lower
    assert early.pareto and a.hypervolume > 0
    dominated = compare_runs([a, early])["hypervolumes"]
    assert dominated[1] < dominated[0] == pytest.approx(a.hypervolume)
    # a tighter budget: the common reference is the looser run's, and the tight run's front is measured there
    both = compare_runs([tight, a])
    assert both["common_reference"] == {"accuracy": a.reference["accuracy"], "latency_ms": 0.85, "params": 2.5e6}
    by_hand = hypervolume(a.normaliser.costs(tight.pareto))
    assert both["hypervolumes"] == pytest.approx([by_hand, a.hypervolume])
    assert by_hand != pytest.approx(tight.hypervolume)


def test_cli_compares_several_runs(cli, runs, tmp_path):
    code, out, _ = cli("pareto", runs["a"], runs["early"], "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"runs", "common_reference", "hypervolumes"}
    assert [r["run"] for r in data["runs"]] == [runs["a"], runs["early"]]
    assert data["hypervolumes"] == pytest.approx(compare_runs([run_result(runs["a"]), run_result(runs["early"])])["hypervolumes"])
    code, out, _ = cli("pareto", runs["a"], "--json")  # one run: the result object, unchanged
    assert code == 0 and json.loads(out) == run_result(runs["a"]).to_dict()
    plot = tmp_path / "both.png"
    code, out, _ = cli("pareto", runs["a"], runs["early"], runs["tight"], "--plot", str(plot))
    assert code == 0 and plot.read_bytes()[:8] == PNG_MAGIC
    table = out[out.index("hypervolume at the common reference point") :].splitlines()
    assert table[1].split()[:3] == ["run", "strategy", "evaluated"] and table[6].startswith("plot: ")
    assert table[3].split()[:4] == [runs["a"], "evolution", "80", str(len(run_result(runs["a"]).pareto))]


def test_runs_over_different_objectives_are_not_compared(one_line_error, cli, runs, tmp_path, tiny, lut):
    other = tmp_path / "two"
    search(
        tiny,
        BUDGET,
        lut=lut,
        estimator=SyntheticAccuracy(tiny),
        trials=8,
        seed=0,
        population=4,
        objectives="accuracy,latency",
        out=other,
    )
    one_line_error(*cli("pareto", runs["a"], str(other)), "different objectives", "accuracy,latency,params", "accuracy,latency")


def test_plot_fronts_of_several_runs_to_html(runs, tmp_path):
    results = [run_result(runs[k]) for k in ("a", "tight")]
    notes = plot_fronts(results, tmp_path / "both.html")
    html = unescaped((tmp_path / "both.html").read_text(encoding="utf-8"))
    for r in results:
        assert f"{r.run} (evolution): front {len(r.pareto)} of {r.evaluated}" in html
    assert "budget latency ≤ 0.85 ms" in html and "budget latency ≤ 0.8 ms" in html
    assert any("outside space efficientformerv2-tiny" in n for n in notes)


# ---- the dashboard --------------------------------------------------------------------------------------------
def test_storage_has_named_objectives_and_readable_architectures(runs):
    import optuna

    study = optuna.load_study(study_name="nas-search", storage=f"sqlite:///{runs['a']}/study.db")
    assert study.metric_names == ["accuracy", "latency", "params"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 80
    for trial in trials[:5]:
        arch = trial.user_attrs["arch"]
        assert set(arch) >= {"space", "resolution", "depths", "widths", "ratios", "mixers"}
        assert search_spaces.Arch.from_dict(arch).id == trial.user_attrs["arch_id"]
        assert trial.values[1] == trial.user_attrs["latency_ms"]  # each metric an attribute of its own
