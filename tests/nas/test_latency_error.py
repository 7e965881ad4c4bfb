"""Every estimate carries its error: the table's held-out error beside each latency it estimates."""

from __future__ import annotations

import json

import pytest

import latency_lut
import nas
from nas.budget import latency_straddle
from nas.estimate import SyntheticAccuracy
from nas.search import run_result, search
from nas.search.plots import figure_data


def test_tables_state_their_error(lut):
    assert lut.error_pct == pytest.approx(lut.meta["provenance"]["error"]["mape_pct"]) and 5 < lut.error_pct < 20
    assert lut.provenance_label == "ESTIMATED"
    measured = latency_lut.load("ci-cpu-onnxruntime")
    assert measured.error_pct is None and measured.provenance_label == "measured"


def test_evaluate_gives_latency_with_its_error(space, lut):
    metrics = nas.evaluate(space.preset("s0"), lut=lut)
    assert metrics["latency_error_ms"] == pytest.approx(metrics["latency_ms"] * lut.error_pct / 100)
    assert nas.evaluate(space.preset("s0"), device="ci-cpu-onnxruntime")["latency_error_ms"] is None


def test_arch_show_prints_the_error(cli, lut):
    code, out, err = cli("arch", "show", "s0")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("latency"))
    assert " ± " in line and f"typical error ±{lut.error_pct:g}% held out" in line and "ESTIMATED" in line


def test_straddle_note_names_entries_within_the_error_of_the_budget():
    note = latency_straddle([0.8, 0.95, 1.04, 0.5], 1.0, 10.0)
    assert note.startswith("2 of 4 front entries") and "±10%" in note and "1 ms budget" in note
    assert latency_straddle([0.5, 0.6], 1.0, 10.0) is None
    assert latency_straddle([0.95], 1.0, None) is None and latency_straddle([0.95], None, 10.0) is None


def test_search_outputs_carry_the_error(tiny, lut, tmp_path, cli):
    run = tmp_path / "run"
    result = search(
        tiny,
        {"params": 2.5e6, "latency_ms": 0.85},
        lut=lut,
        estimator=SyntheticAccuracy(tiny),
        trials=40,
        seed=0,
        population=10,
        out=run,
    )
    assert result.latency_error_pct == lut.error_pct
    for entry in result.pareto:
        assert entry["latency_error_ms"] == pytest.approx(entry["latency_ms"] * lut.error_pct / 100)
    on_disk = json.loads((run / "pareto.json").read_text())
    assert on_disk["latency_error_pct"] == lut.error_pct and "latency_error_ms" in on_disk["pareto"][0]
    again = run_result(run)
    assert again.latency_error_pct == lut.error_pct
    data = figure_data([again], "latency", "accuracy", references=False)
    front = data.runs[0].front
    assert len(front.x_err) == len(front.x) > 0 and not front.y_err
    assert front.x_err[0] == pytest.approx(front.x[0] * lut.error_pct / 100)
    assert f"typical error ±{lut.error_pct:g}%" in data.x_label
    code, out, err = cli("pareto", str(run))
    assert code == 0, err
    assert f"typical error ±{lut.error_pct:g}%" in out and " ±" in out
