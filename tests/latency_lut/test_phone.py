"""Measuring a phone: Core ML packages out, measurements (JSON or CSV) back in as a latency table."""

from __future__ import annotations

import json

import pytest

import latency_lut
import search_spaces
import supernet
from latency_lut import LUTError
from latency_lut.convert import coreml_model
from latency_lut.phone import export_blocks, import_measurements
from nas.cli import main

TINY = "efficientformerv2-tiny"


@pytest.fixture(scope="module")
def synthetic():
    """Synthetic 'phone' measurements: a known cost per layer and, for models, its exact sum."""
    space = search_spaces.load(TINY)
    blocks = {spec.key: 0.01 + spec.cout / 1e4 for spec in space.all_layers()}
    return space, blocks


@pytest.mark.slow
def test_export_blocks_writes_packages_and_manifest(tmp_path):
    pytest.importorskip("coremltools")
    manifest = export_blocks(TINY, tmp_path, limit=2, calibration_models=1)
    assert len(manifest["blocks"]) == 2 and len(manifest["models"]) == 1
    for entry in manifest["blocks"] + manifest["models"]:
        package = tmp_path / entry["file"]
        assert (package / "Manifest.json").is_file()  # an ML program package
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["blocks"][0]["key"] == search_spaces.load(TINY).all_layers()[0].key
    assert on_disk["precision"] == "fp16" and on_disk["target"] == "iOS16"
    # resuming keeps finished packages
    mtime = (tmp_path / manifest["blocks"][0]["file"]).stat().st_mtime
    export_blocks(TINY, tmp_path, limit=2, calibration_models=1)
    assert (tmp_path / manifest["blocks"][0]["file"]).stat().st_mtime == mtime


@pytest.mark.slow
def test_a_sepvit_block_converts_to_an_ml_program(tmp_path):
    """The per-layer packages of SepViT blocks (stage 1 at 224 px: a 56x56 map in 8x8 windows of 7; a map
    whose side 7 does not divide, padded) are ML programs with the mixer's operations in them."""
    ct = pytest.importorskip("coremltools")
    specs = [s for s in search_spaces.load("efficientformerv2").all_layers() if s.kind == "sepvit"]
    for spec in (next(s for s in specs if s.grid == 56), next(s for s in specs if s.grid % s.window)):
        package = coreml_model(supernet.build_layer(spec), (1, spec.cin, spec.grid, spec.grid))
        package.save(str(tmp_path / "b.mlpackage"))
        program = ct.utils.load_spec(str(tmp_path / "b.mlpackage"))
        assert program.WhichOneof("Type") == "mlProgram"
        block = next(iter(program.mlProgram.functions["main"].block_specializations.values()))
        ops = {op.type for op in block.operations}
        assert {"layer_norm", "softmax", "gelu"} <= ops, (spec.key, sorted(ops))


def test_import_json_round_trip_with_calibration(tmp_path, synthetic):
    space, blocks = synthetic
    archs = [space.sample(i) for i in range(6)]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"models": [{"id": a.id, "arch": a.to_dict()} for a in archs]}))
    # whole models run 1.1x the sum of their layers plus 0.05 ms
    models = {a.id: 1.1 * sum(blocks[s.key] for s in a.layers()) + 0.05 for a in archs}
    measurements = tmp_path / "m.json"
    measurements.write_text(json.dumps({"blocks": blocks, "models": models}))
    lut = import_measurements(measurements, "my-phone", tmp_path / "my-phone.json", space=TINY, manifest=manifest)
    assert lut.entries[next(iter(blocks))]["ms"] == pytest.approx(next(iter(blocks.values())))
    assert lut.calibration.fitted_on == 6
    for arch in [space.sample(100 + i) for i in range(5)]:
        expected = 1.1 * sum(blocks[s.key] for s in arch.layers()) + 0.05
        assert lut.predict(arch) == pytest.approx(expected, rel=1e-6)
    assert latency_lut.LUT.read(tmp_path / "my-phone.json").provenance == "measured"


def test_import_csv(tmp_path, synthetic, capsys, monkeypatch):
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    space, blocks = synthetic
    csv_file = tmp_path / "m.csv"
    csv_file.write_text("key,ms,spread_ms\n" + "".join(f"{k},{v},0.001\n" for k, v in blocks.items()))
    code = main(["lut", "import", str(csv_file), "--device", "csv-phone", "--space", TINY, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["entries"] == len(blocks)
    lut = latency_lut.load("csv-phone")
    arch = space.largest()
    assert lut.predict(arch) == pytest.approx(sum(blocks[s.key] for s in arch.layers()))


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda b: {**b, "ffn:c999:g7:e4": 1.0}, "unknown layer key 'ffn:c999:g7:e4'"),
        (lambda b: {**b, next(iter(b)): "fast"}, "fast"),
        (lambda b: {**b, next(iter(b)): -1}, "non-negative"),
        (lambda b: dict(list(b.items())[1:]), "no measurement for 1 of 30"),
    ],
)
def test_bad_imports_exit_2_and_keep_the_existing_table(tmp_path, synthetic, capsys, edit, needle):
    _, blocks = synthetic
    existing = tmp_path / "phone.json"
    existing.write_text("the old table")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"blocks": edit(blocks)}))
    with pytest.raises(LUTError, match=needle):
        import_measurements(bad, "phone", existing, space=TINY)
    code = main(["lut", "import", str(bad), "--device", "phone", "--space", TINY, "--out", str(existing)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and err.startswith("nas: error: ")
    assert existing.read_text() == "the old table"


def test_bad_csv_names_the_line(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("key,ms\nffn:c96:g14:e4,0.1\nffn:c96:g14:e3,abc\n")
    with pytest.raises(LUTError, match="line 3"):
        import_measurements(bad, "x", tmp_path / "x.json", space=TINY)
    bad.write_text("name,latency\n")
    with pytest.raises(LUTError, match="header"):
        import_measurements(bad, "x", tmp_path / "x.json", space=TINY)
