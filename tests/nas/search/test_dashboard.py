"""What optuna-dashboard shows of a run: every strategy's trials carry their constraints (infeasible
ones positive, so the dashboard greys them and Optuna never lists them among the best), the genes as
parameters, and each metric as a number of its own. Checked through the dashboard's own API, served on
loopback."""

from __future__ import annotations

import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest

from nas.estimate import SyntheticAccuracy
from nas.search import search

BUDGET = {"params": 2.5e6, "latency_ms": 0.85}


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # no request lines on stderr
        pass


@pytest.fixture
def dashboard():
    """``get(path)`` on optuna-dashboard serving a storage URL, on 127.0.0.1."""
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    servers = []

    def serve(url):
        server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(url), handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)

        def get(path):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}{path}", timeout=30) as response:
                return json.loads(response.read())

        return get

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("strategy,sampler", [("evolution", "nsga2"), ("optuna", "random"), ("actions", "nsga2")])
def test_the_dashboard_reports_every_strategys_constraints(dashboard, tiny, lut, tmp_path, strategy, sampler):
    out = tmp_path / "run"
    trials = 30 if strategy != "actions" else None
    result = search(
        tiny,
        BUDGET,
        lut=lut,
        estimator=SyntheticAccuracy(tiny),
        trials=trials,
        seed=1,
        strategy=strategy,
        sampler=sampler,
        population=8,
        out=out,
    )
    url = f"sqlite:///{out / 'study.db'}"
    get = dashboard(url)
    study_id = next(s["study_id"] for s in get("/api/studies")["study_summaries"] if s["study_name"] == "nas-search")
    shown = get(f"/api/studies/{study_id}")["trials"]
    complete = [t for t in shown if t["state"] == "Complete"]
    assert len(complete) == result.evaluated
    feasible = {e.number: e.feasible for e in result.history}
    for trial in complete:
        constraints = trial["constraints"]
        assert len(constraints) == 2, trial["number"]  # one per budgeted metric
        assert (max(constraints) <= 0) == feasible[trial["number"]]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert float(attrs["params"]) > 0 and float(attrs["latency_ms"]) > 0  # each metric on its own
        assert {p["name"] for p in trial["params"]} >= {"resolution", "s1.depth", "s4.width"}
    if strategy != "evolution":  # evolution repairs every child into the budget; the others meet infeasible ones
        assert not all(feasible.values())
    study = optuna.load_study(study_name="nas-search", storage=url)
    assert study.best_trials and all(feasible[t.number] for t in study.best_trials)
