"""Additive per-layer costs over the encoding: vectorised totals equal per-architecture sums, and the
dynamic-programming minimum equals the exhaustive minimum of an enumerable space."""

from __future__ import annotations

import random

import numpy as np
import pytest

import latency_lut
import search_spaces
import supernet
from nas.estimate import enumerate_codes

TINY = search_spaces.load("efficientformerv2-tiny")
DEFAULT = search_spaces.load("efficientformerv2")


@pytest.fixture(scope="module")
def tiny_codes():
    codes = enumerate_codes(TINY)
    assert len(codes) == TINY.size() == 276_480 == len(np.unique(codes, axis=0))
    return codes


@pytest.mark.parametrize("metric", ["params", "macs"])
def test_totals_equal_per_architecture_counts(metric):
    for space in (TINY, DEFAULT):
        tables = supernet.count_tables(space)[metric]
        archs = [space.sample(random.Random(i)) for i in range(150)]
        total, n_layers = tables.total(np.array([space.encode(a) for a in archs]))
        assert total.tolist() == [getattr(supernet.count(a), metric) for a in archs]
        assert n_layers.tolist() == [len(a.layers()) for a in archs]


@pytest.mark.parametrize("metric", ["params", "macs"])
def test_minimum_equals_exhaustive_minimum(tiny_codes, metric):
    tables = supernet.count_tables(TINY)[metric]
    value, arch = tables.minimum()
    totals, _ = tables.total(tiny_codes)
    assert value == totals.min()
    assert getattr(supernet.count(arch), metric) == value


def test_latency_minimum_equals_exhaustive_minimum(tiny_codes, tmp_path):
    space = TINY
    rng = np.random.default_rng(0)
    # a synthetic table with random, non-monotone entries, so the minimum is not simply the smallest arch
    meta = {
        "schema": 1,
        "device": "synthetic",
        "backend": "torch",
        "threads": 1,
        "batch": 1,
        "space": space.ref,
        "resolutions": list(space.resolutions),
        "provenance": {"kind": "estimated"},
        "versions": {},
        "date": "2026-01-01",
    }
    entries = {spec.key: {"ms": float(rng.uniform(0.01, 1.0))} for spec in space.all_layers()}
    lut = latency_lut.LUT(meta, entries, latency_lut.Calibration(scale=1.3, per_layer_ms=0.02, offset_ms=0.4))
    value, arch = lut.minimum()
    predicted = lut.predict_codes(tiny_codes)
    assert value == pytest.approx(predicted.min(), rel=1e-12)
    assert lut.predict(arch) == pytest.approx(value, rel=1e-12)


def test_shipped_default_table_minimum_is_below_every_sample():
    lut = latency_lut.load("iphone12-coreml")
    value, arch = lut.minimum()
    samples = lut.predict_many([DEFAULT.sample(random.Random(i)) for i in range(2000)])
    assert value <= samples.min() and lut.predict(arch) == pytest.approx(value)


def test_bad_gene_matrix_is_rejected():
    tables = TINY.cost_tables(lambda spec: 1.0)
    with pytest.raises(ValueError, match="gene matrix"):
        tables.total(np.zeros((3, 5), dtype=np.int64))
