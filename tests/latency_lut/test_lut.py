"""Latency tables: building (resumable, atomic), prediction paths, calibration, validation, bad files."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
import torch

import latency_lut
import search_spaces
from latency_lut import LUT, Calibration, LUTError
from latency_lut import build as build_module
from nas.mes import mes

TINY = "efficientformerv2-tiny"


@pytest.fixture(scope="module")
def tiny_lut(tmp_path_factory):
    out = tmp_path_factory.mktemp("luts") / "tiny.json"
    return latency_lut.build_lut(TINY, "tiny-cpu", "onnxruntime", out, passes=2, calibration_samples=4, batch_size=16)


def test_build_covers_every_key_with_provenance(tiny_lut):
    space = search_spaces.load(TINY)
    assert set(tiny_lut.entries) == {spec.key for spec in space.all_layers()}
    assert all(e["ms"] > 0 and e["spread_ms"] >= 0 and e["passes"] == 2 for e in tiny_lut.entries.values())
    meta = LUT.read(tiny_lut.path).meta
    assert meta["provenance"]["kind"] == "measured" and meta["provenance"]["host"]
    # the time spent exporting (host side on a phone) and timing (device side), reported apart
    assert meta["provenance"]["preparing_s"] > 0 and meta["provenance"]["timing_s"] > 0
    assert meta["backend"] == "onnxruntime" and meta["threads"] == 1 and meta["batch"] == 1
    assert "onnxruntime" in meta["versions"] and meta["schema"] == 1
    assert tiny_lut.calibration.fitted_on == 4 and tiny_lut.calibration.scale > 0
    assert not list(tiny_lut.path.parent.glob("*.partial*"))


def test_all_layers_cover_every_architecture():
    for name in search_spaces.list_spaces():
        space = search_spaces.load(name)
        keys = {spec.key for spec in space.all_layers()}
        assert len(keys) == len(space.all_layers())
        rng = random.Random(3)
        for _ in range(300):
            assert {spec.key for spec in space.sample(rng).layers()} <= keys


def test_prediction_paths_agree(tiny_lut):
    space = search_spaces.load(TINY)
    archs = [space.sample(random.Random(i)) for i in range(100)]
    one_by_one = np.array([tiny_lut.predict(a) for a in archs])
    np.testing.assert_allclose(tiny_lut.predict_many(archs), one_by_one, rtol=1e-12)
    np.testing.assert_allclose(tiny_lut.predict_codes(np.array([space.encode(a) for a in archs])), one_by_one, rtol=1e-12)
    arch = archs[0]
    raw = sum(tiny_lut.entries[s.key]["ms"] for s in arch.layers())
    cal = tiny_lut.calibration
    assert tiny_lut.predict(arch) == pytest.approx(cal.scale * raw + cal.per_layer_ms * len(arch.layers()) + cal.offset_ms)
    # the saved file predicts the same
    assert LUT.read(tiny_lut.path).predict(arch) == pytest.approx(tiny_lut.predict(arch))


def test_missing_key_is_an_error_naming_it(tiny_lut):
    s0 = search_spaces.load("efficientformerv2").preset("s0")
    with pytest.raises(LUTError, match=r"no entry for layer \S+"):
        tiny_lut.predict(s0)
    with pytest.raises(LUTError, match="efficientformerv2-tiny"):
        tiny_lut.check_space(search_spaces.load("efficientformerv2"))


def test_calibration_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    sums, layers = rng.uniform(2, 20, 30), rng.integers(20, 60, 30)
    measured = 1.2 * sums + 0.01 * layers + 0.3
    cal = Calibration.fit(sums, layers, measured)
    assert (cal.scale, cal.per_layer_ms, cal.offset_ms) == pytest.approx((1.2, 0.01, 0.3), abs=1e-9)
    assert cal.fitted_on == 30


def test_interrupted_build_resumes_without_remeasuring(tmp_path, monkeypatch):
    out = tmp_path / "t.json"
    out.write_text("old table")  # an existing table is not touched by a failed build
    measured: list[str] = []
    real = build_module.measure_interleaved

    def counting(runners, **kw):
        measured.extend(k for k in runners if not build_module.is_reference(k))
        if len(measured) > 10:
            raise KeyboardInterrupt
        return real(runners, **kw)

    monkeypatch.setattr(build_module, "measure_interleaved", counting)
    with pytest.raises(KeyboardInterrupt):
        latency_lut.build_lut(TINY, "t", "torch", out, passes=1, calibration_samples=0, batch_size=10)
    assert out.read_text() == "old table"
    partial = json.loads((tmp_path / "t.json.partial.json").read_text())
    assert len(partial["entries"]) == 10
    spent_before = partial["meta"]["provenance"]["timing_s"]
    with pytest.raises(LUTError, match="--resume"):
        latency_lut.build_lut(TINY, "t", "torch", out, passes=1, calibration_samples=0)
    with pytest.raises(LUTError, match="backend"):
        latency_lut.build_lut(TINY, "t", "onnxruntime", out, passes=1, calibration_samples=0, resume=True)
    first = list(measured)
    measured.clear()
    monkeypatch.setattr(build_module, "measure_interleaved", real)
    monkeypatch.setattr(
        build_module,
        "measure_interleaved",
        lambda runners, **kw: (measured.extend(k for k in runners if not build_module.is_reference(k)), real(runners, **kw))[1],
    )
    lut = latency_lut.build_lut(TINY, "t", "torch", out, passes=1, calibration_samples=0, resume=True, batch_size=10)
    assert not set(measured) & set(first[:10])
    assert len(lut.entries) == 30 and set(first[:10]) <= set(lut.entries)
    assert lut.meta["provenance"]["timing_s"] >= spent_before  # the resumed build adds to the interrupted one's time
    assert LUT.read(out).device == "t"


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda text: text[: len(text) // 2], "corrupted or truncated"),
        (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "entries"}), "missing entries"),
        (lambda text: text.replace('"schema": 1', '"schema": 99'), "schema 99"),
        (lambda text: json.dumps({**json.loads(text), "entries": {"ffn:c96:g14:e4": {"ms": "fast"}}}), "fast"),
    ],
)
def test_bad_table_files_exit_2(cli, tmp_path, tiny_lut, mutate, needle):
    bad = tmp_path / "bad.json"
    bad.write_text(mutate(tiny_lut.path.read_text()))
    with pytest.raises(LUTError, match=needle):
        LUT.read(bad)
    code, out, err = cli("arch", "show", "s0", "--device", str(bad))
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("nas: error: ")


def test_unknown_device_and_backend_exit_2(cli, nas_home):
    code, _, err = cli("lut", "validate", "--device", "pixel-42")
    assert code == 2 and "pixel-42" in err and err.count("\n") == 1
    code, _, err = cli("lut", "build", "--device", "x", "--backend", "tpu", "--space", TINY)
    assert code == 2 and "tpu" in err
    code, _, err = cli("lut", "build", "--device", "mac", "--backend", "coreml", "--space", TINY)
    assert code == 2 and "macOS" in err and err.count("\n") == 1
    assert not (nas_home / "luts" / "mac.json").exists()


def test_user_tables_are_listed_and_loaded_by_name(cli, nas_home, tiny_lut):
    (nas_home / "luts").mkdir(parents=True)
    (nas_home / "luts" / "tiny-cpu.json").write_text(tiny_lut.path.read_text())
    code, out, _ = cli("lut", "list", "--json")
    tables = {t["device"]: t for t in json.loads(out)}
    assert code == 0 and tables["tiny-cpu"]["entries"] == 30 and tables["tiny-cpu"]["provenance"] == "measured"
    assert not tables["tiny-cpu"]["shipped"] and tables["tiny-cpu"]["backend"] == "onnxruntime"
    assert latency_lut.load("tiny-cpu").predict(search_spaces.load(TINY).largest()) > 0


def test_dry_run_counts_keys(cli):
    code, out, _ = cli("lut", "build", "--dry-run", "--space", TINY, "--json")
    data = json.loads(out)
    assert code == 0 and data["entries"] == 30 and sum(data["by_kind"].values()) == 30


def test_validate_reports_statistics_and_plot(tiny_lut, tmp_path):
    from latency_lut.validate import plot_validation, validate

    report = validate(tiny_lut, samples=6, passes=2)
    assert report["samples"] == 6 and len(report["rows"]) == 6
    assert 0 <= report["within_10pct"] <= 1 and -1 <= report["kendall_tau"] <= 1 and report["mape"] >= 0
    row = report["rows"][0]
    assert row["error_pct"] == pytest.approx((row["predicted_ms"] - row["measured_ms"]) / row["measured_ms"] * 100)
    assert report["host_notice"] is None  # built on this host
    ratios = np.array([r["measured_ms"] / r["predicted_ms"] for r in report["rows"]])
    assert report["speed_ratio"] == pytest.approx(np.median(ratios))
    assert report["mape_rescaled"] == pytest.approx(np.abs(1 - report["speed_ratio"] / ratios).mean())
    png = plot_validation(report, tmp_path / "v.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mes_matches_hand_computed_values():
    assert mes(3e6, 1.0) == pytest.approx(100.0)
    assert mes(12e6, 2.0) == pytest.approx(100 * 4**-0.5 * 2**-1)  # 25
    assert mes(3.6e6, 0.9) == pytest.approx(100 * 1.2**-0.5 / 0.9)
    assert mes(6e6, 1.0, alpha={"params": 1.0}) == pytest.approx(50.0)
    assert mes(3e6, 4.0, unit={"latency": 2.0}) == pytest.approx(50.0)


@pytest.mark.ray
@pytest.mark.slow
def test_build_on_a_local_ray_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        lut = latency_lut.build_lut(
            TINY,
            "ray-tiny",
            "torch",
            tmp_path / "r.json",
            passes=1,
            calibration_samples=0,
            batch_size=3,
            limit=6,
            ray_address="local",
        )
        assert len(lut.entries) == 6 and all(e["ms"] > 0 for e in lut.entries.values())
        assert lut.meta["provenance"]["timing_s"] > 0  # the nodes' seconds come back with their batches
        assert ray.cluster_resources().get("nas_lut_device") == 1
    finally:
        ray.shutdown()
    assert LUT.read(tmp_path / "r.json").device == "ray-tiny"


@pytest.mark.parametrize("backend", ["torch", "torchscript", "onnxruntime"])
@pytest.mark.parametrize(
    "spec",
    [search_spaces.LayerSpec("mhsa", 32, 32, 14, stride=2), search_spaces.LayerSpec("sepvit", 32, 32, 12, heads=2, window=7)],
    ids=lambda spec: spec.key,
)
def test_cpu_backends_run_the_layer_they_time(backend, spec):
    import torch

    import supernet
    from latency_lut import make_runner, measure_interleaved

    torch.manual_seed(0)
    module = supernet.build_layer(spec).eval()
    with torch.no_grad():
        module.layer_scale.fill_(1.0)
    shape = (1, spec.cin, spec.grid, spec.grid)
    run_once = make_runner(backend, module, shape)
    out = run_once()
    out = torch.as_tensor(out[0] if isinstance(out, list) else out)
    assert out.shape == shape and torch.isfinite(out).all()
    timing = measure_interleaved({"layer": run_once}, passes=3, chunk_ms=5)["layer"]
    assert timing.ms > 0 and timing.spread_ms >= 0 and timing.passes == 3


def test_a_module_slower_than_a_chunk_runs_once_per_pass_and_a_fast_one_several_times():
    """Whole models (slower than a chunk) run once per pass, not three times: that took a fitted table's
    timing from 14% to 6% of a per-layer build's; fast modules still fill their chunk."""
    import time

    from latency_lut import measure_interleaved

    calls = {"slow": 0, "fast": 0}

    def runner(name: str, seconds: float):
        def run():
            calls[name] += 1
            time.sleep(seconds)

        return run

    timings = measure_interleaved(
        {"slow": runner("slow", 0.012), "fast": runner("fast", 0.001)}, passes=3, chunk_ms=8, warmup_ms=1
    )
    assert timings["slow"].iters == 1 and calls["slow"] == 3 + 3  # three warm-up runs, one per pass
    assert 2 <= timings["fast"].iters <= 8 and timings["slow"].ms >= 12


def _ffn_layer():
    import supernet

    return supernet.build_layer(search_spaces.LayerSpec("ffn", 16, 16, 7, ratio=2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the backend runs")
def test_cuda_says_why_it_cannot_run_here():
    from latency_lut import BackendError, make_runner

    with pytest.raises(BackendError, match="CUDA"):
        make_runner("cuda", _ffn_layer(), (1, 16, 7, 7))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_backend_times_a_layer_on_the_gpu():
    from latency_lut import make_runner, measure_interleaved

    run_once = make_runner("cuda", _ffn_layer(), (1, 16, 7, 7))
    out = torch.as_tensor(run_once())
    assert out.shape == (1, 16, 7, 7) and torch.isfinite(out).all()
    timing = measure_interleaved({"layer": run_once}, passes=3, chunk_ms=5)["layer"]
    assert 0 < timing.ms < 100 and timing.passes == 3


@pytest.mark.skipif(sys.platform == "darwin", reason="CoreML runs on macOS")
def test_coreml_says_why_it_cannot_run_here():
    from latency_lut import BackendError, make_runner

    with pytest.raises(BackendError, match="macOS"):
        make_runner("coreml", _ffn_layer(), (1, 16, 7, 7))


# ---- a table from another CPU model ------------------------------------------------------------------
XEON = "Intel(R) Xeon(R) CPU @ 2.20GHz, 2 logical CPUs, Linux 6.1"


def test_host_mismatch_names_both_cpu_models_and_only_for_measured_cpu_tables(monkeypatch):
    from latency_lut import host

    monkeypatch.setattr(host, "host_description", lambda: XEON)
    measured = {"kind": "measured", "host": "AMD EPYC, 2 logical CPUs, Linux 6.18"}
    notice = host.host_mismatch("onnxruntime", measured, "ci-cpu-onnxruntime")
    assert "AMD EPYC" in notice and "Intel(R) Xeon(R) CPU @ 2.20GHz" in notice and "nas lut build" in notice
    assert host.host_mismatch("onnxruntime", {"kind": "measured", "host": XEON}, "x") is None  # same model
    assert host.host_mismatch("coreml", measured, "phone") is None  # a phone's table is not about this host
    assert host.host_mismatch("onnxruntime", {"kind": "estimated"}, "x") is None
    farm = {"kind": "measured", "host": f"AMD EPYC, 8 logical CPUs, Linux; {XEON}"}  # a table measured on a Ray cluster
    assert host.host_mismatch("torch", farm, "farm") is None


def test_arch_show_validate_and_search_say_when_the_table_is_from_another_cpu(monkeypatch, cli, tmp_path):
    from latency_lut import host
    from nas.estimate import SyntheticAccuracy
    from nas.search import search

    monkeypatch.setattr(host, "host_description", lambda: "Some Other CPU, 2 logical CPUs, Linux")
    lut = latency_lut.load("ci-cpu-onnxruntime")
    recorded = lut.meta["provenance"]["host"].split(",")[0]
    code, _, err = cli("arch", "show", "s0", "--device", "ci-cpu-onnxruntime")
    assert code == 0 and "nas: note:" in err and recorded in err and "Some Other CPU" in err
    space = search_spaces.load("efficientformerv2")
    result = search(space, {"params": 3e6}, lut=lut, estimator=SyntheticAccuracy(space), trials=4, population=2)
    assert any(recorded in n and "Some Other CPU" in n for n in result.notes)
    monkeypatch.setattr(host, "host_description", lambda: lut.meta["provenance"]["host"])
    code, _, err = cli("arch", "show", "s0", "--device", "ci-cpu-onnxruntime")
    assert code == 0 and "note" not in err


def test_timings_are_kept_relative_to_a_reference_timed_in_the_same_passes():
    import time as _time

    from latency_lut.timing import measure_interleaved

    slow = {"factor": 1.0}

    def spinner(ms):
        def run():
            end = _time.perf_counter() + ms * slow["factor"] / 1e3
            while _time.perf_counter() < end:
                pass

        return run

    timings = measure_interleaved(
        {"ref": spinner(0.5), "double": spinner(1.0)}, passes=3, chunk_ms=3, warmup_ms=3, reference="ref"
    )
    assert timings["double"].ratio == pytest.approx(2.0, rel=0.25) and timings["ref"].ratio == 1.0
    with pytest.raises(ValueError, match="reference"):
        measure_interleaved({"a": spinner(0.1)}, passes=1, reference="nope")
    # several references: the unit is their geometric mean, pass by pass (sqrt(0.5 * 2.0) = 1.0 ms)
    timings = measure_interleaved(
        {"ref": spinner(0.5), "quad": spinner(2.0), "double": spinner(1.0)},
        passes=3,
        chunk_ms=3,
        warmup_ms=3,
        reference=["ref", "quad"],
    )
    assert timings["double"].ratio == pytest.approx(1.0, rel=0.25) and timings["quad"].ratio == pytest.approx(2.0, rel=0.25)
    assert len(timings["double"].pass_ms) == 3


def test_build_records_its_reference_and_validate_measures_in_its_unit(tmp_path):
    lut = latency_lut.build_lut(TINY, "t", "torch", tmp_path / "t.json", passes=1, calibration_samples=3)
    ref = lut.meta["provenance"]["reference"]
    assert ref["ms"] > 0 and [a.id for a in build_module.recorded_reference(lut.meta["provenance"])[0]] == [
        a.id for a in build_module.reference_archs(lut.space)
    ]
    entry = next(iter(lut.entries.values()))
    assert entry["ms"] == pytest.approx(entry["ratio"] * ref["ms"], rel=1e-5) and "raw_ms" in entry
    from latency_lut.validate import validate

    report = validate(LUT.read(tmp_path / "t.json"), samples=3, passes=1)
    assert report["reference"]["table_ms"] == ref["ms"] and report["reference"]["now_ms"] > 0
    assert 0 <= report["raw_within_10pct"] <= 1 and report["raw_mape"] >= 0


def test_the_unit_is_every_preset_and_tables_of_one_reference_still_read():
    space = search_spaces.load("efficientformerv2")
    references = build_module.reference_archs(space)
    assert [a.id for a in references] == [space.preset(name).id for name in space.preset_names]
    record = build_module.reference_record(references, 20.0, "why")
    archs, ms = build_module.recorded_reference({"reference": record})
    assert [a.id for a in archs] == [a.id for a in references] and ms == 20.0
    # a table written when the unit was one model (the first preset) keeps being validated in it
    older = {"reference": {"arch": references[0].to_dict(), "ms": 13.2}}
    assert [a.id for a in build_module.recorded_reference(older)[0]] == [references[0].id]
    assert build_module.recorded_reference({}) is None and build_module.recorded_reference({"reference": {"ms": 1}}) is None


def test_a_resumed_build_keeps_the_unit_it_started_with(tmp_path, monkeypatch):
    out = tmp_path / "t.json"
    real = build_module.measure_interleaved
    calls = {"n": 0}

    def interrupting(runners, **kw):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return real(runners, **kw)

    monkeypatch.setattr(build_module, "measure_interleaved", interrupting)
    with pytest.raises(KeyboardInterrupt):
        latency_lut.build_lut(TINY, "t", "torch", out, passes=1, calibration_samples=0, batch_size=10)
    partial_path = tmp_path / "t.json.partial.json"
    partial = json.loads(partial_path.read_text())
    other = search_spaces.load(TINY).sample(random.Random(5))
    partial["meta"]["provenance"]["reference"]["archs"] = [other.to_dict()]  # as if started with another unit
    partial_path.write_text(json.dumps(partial))
    seen: list[list[str]] = []

    def recording(runners, **kw):
        seen.append(kw.get("reference") or [])
        return real(runners, **kw)

    monkeypatch.setattr(build_module, "measure_interleaved", recording)
    used: list[str] = []
    monkeypatch.setattr(
        build_module,
        "_reference_runner",
        lambda backend, arch, threads: (used.append(arch.id), build_module.runner_for(backend, arch, threads))[1],
    )
    lut = latency_lut.build_lut(TINY, "t", "torch", out, passes=1, calibration_samples=0, resume=True, batch_size=10)
    assert seen and all(len(keys) == 1 for keys in seen) and set(used) == {other.id}
    assert [a.id for a in build_module.recorded_reference(lut.meta["provenance"])[0]] == [other.id]
