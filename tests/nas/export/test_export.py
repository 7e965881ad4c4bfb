"""`nas export`: every format loaded back in its own runtime, Core ML for each mixer, supernet weights,
run entries and --pick, and the one-line errors of bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import latency_lut
import search_spaces
import supernet
from latency_lut.convert import onnx_bytes
from nas.estimate import SyntheticAccuracy
from nas.search import search
from search_spaces import Arch

TINY = "efficientformerv2-tiny"


def small(mixer: str) -> Arch:
    """A small architecture of the default space with `mixer` wherever the space allows it."""
    early = "none" if mixer == "mhsa" else mixer
    late = "none" if mixer == "sepvit" else mixer  # stage 4's map is one 7x7 window: no SepViT there
    return Arch.from_dict(
        {
            "space": "efficientformerv2",
            "resolution": 192,
            "depths": [1, 1, 2, 2],
            "widths": [16, 32, 64, 128],
            "ratios": [[2], [2], [2, 2], [2, 2]],
            "mixers": [[early], [early], ["none", mixer], ["none", late]],
        }
    )


def export_json(cli, *argv: str) -> dict:
    code, out, err = cli("export", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def outputs(model, arch: Arch, batch: int = 1) -> np.ndarray:
    x = torch.randn(batch, 3, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.eval()(x).numpy()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tiny = search_spaces.load(TINY)
    out = tmp_path_factory.mktemp("runs") / "run"
    result = search(
        tiny,
        {"params": 2.5e6, "latency_ms": 0.85},
        lut=latency_lut.load("iphone12-coreml"),
        estimator=SyntheticAccuracy(tiny),
        trials=40,
        seed=0,
        population=10,
        out=out,
    )
    assert len(result.pareto) >= 3 and len(result.history) == 40
    return out, result


# ---- each format in its runtime ------------------------------------------------------------------
@pytest.mark.parametrize("mixer", ["mhsa", "sepvit"])
def test_pt_whole_module_and_state_dict(cli, tmp_path, mixer):
    arch = small(mixer)
    info = export_json(cli, str(_arch_file(tmp_path, arch)), "--format", "pt", "--out", str(tmp_path / "m.pt"))
    model = torch.load(tmp_path / "m.pt", weights_only=False)
    assert type(model) is supernet.SubNet and model.arch == arch
    assert info["params"] == sum(p.numel() for p in model.parameters()) == supernet.count(arch).params
    assert info["bytes"] == (tmp_path / "m.pt").stat().st_size and "random" in info["weights"]
    export_json(cli, str(_arch_file(tmp_path, arch)), "--format", "pt", "--state-dict", "--out", str(tmp_path / "sd.pt"))
    plain = supernet.SubNet(arch)
    plain.load_state_dict(torch.load(tmp_path / "sd.pt", weights_only=True))
    assert np.array_equal(outputs(plain, arch), outputs(model, arch))
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("mixer", ["additive", "sepvit"])
def test_torchscript_is_frozen_and_carries_metadata(cli, tmp_path, mixer):
    arch = small(mixer)
    source = _arch_file(tmp_path, arch)
    export_json(cli, str(source), "--format", "pt", "--out", str(tmp_path / "m.pt"))
    info = export_json(cli, str(source), "--format", "torchscript", "--out", str(tmp_path / "m.ts"))
    extra = {"nas.json": ""}
    scripted = torch.jit.load(str(tmp_path / "m.ts"), _extra_files=extra)
    assert not list(scripted.parameters())  # frozen: weights are constants
    reference = torch.load(tmp_path / "m.pt", weights_only=False)  # same seeded initialisation
    assert np.abs(outputs(scripted, arch, batch=2) - outputs(reference, arch, batch=2)).max() < 1e-4
    meta = json.loads(extra["nas.json"])
    assert Arch.from_dict(json.loads(meta["arch"])) == arch and int(meta["params"]) == info["params"]
    assert info["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("mixer", ["separable", "sepvit"])
def test_onnx_runs_in_onnx_runtime_with_metadata(cli, tmp_path, mixer):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    arch = small(mixer)
    source = _arch_file(tmp_path, arch)
    export_json(cli, str(source), "--format", "pt", "--out", str(tmp_path / "m.pt"))
    reference = torch.load(tmp_path / "m.pt", weights_only=False)
    for name, extra, batch in (("m.onnx", [], 1), ("dyn.onnx", ["--dynamic-batch"], 3)):
        info = export_json(cli, str(source), "--format", "onnx", "--out", str(tmp_path / name), *extra)
        proto = onnx.load(str(tmp_path / name))
        onnx.checker.check_model(proto, full_check=True)
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
        meta = {p.key: p.value for p in proto.metadata_props}
        assert Arch.from_dict(json.loads(meta["arch"])) == arch
        assert int(meta["params"]) == supernet.count(arch).params and int(meta["macs"]) == supernet.count(arch).macs
        assert float(meta["latency_ms"]) > 0 and float(meta["mes"]) > 0 and meta["latency_device"]
        session = ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
        x = torch.randn(batch, 3, 192, 192, generator=torch.Generator().manual_seed(1)).numpy()
        got = session.run(None, {"input": x})[0]
        assert got.shape == (batch, 1000)
        assert np.abs(got - outputs(reference, arch, batch)).max() < 1e-4 and info["max_abs_diff"] < 1e-4


@pytest.mark.slow
def test_onnx_runtime_equals_pytorch_on_random_sepvit_architectures():
    """Windows exact (224 px) and padded (192, 256 px), one to four heads, widths and ratios at random;
    stages cut to at most three blocks (the first ones of a random architecture) to keep exports short."""
    ort = pytest.importorskip("onnxruntime")
    space = search_spaces.load("efficientformerv2")
    archs = []
    for i in range(400):
        d = space.sample(i).to_dict()
        keep = [min(n, 3) for n in d["depths"]]
        d.update(
            depths=keep, ratios=[r[:k] for r, k in zip(d["ratios"], keep)], mixers=[m[:k] for m, k in zip(d["mixers"], keep)]
        )
        arch = Arch.from_dict(d)
        if space.contains(arch) and any("sepvit" in m for m in arch.mixers) and len(archs) < 30:
            archs.append(arch)
    assert len(archs) == 30 and {a.resolution for a in archs} == {192, 224, 256}
    assert {s.heads for a in archs for s in a.layers() if s.kind == "sepvit"} == {1, 2, 4}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    worst = 0.0
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        model = supernet.SubNet(arch).eval()
        shape = (1, 3, arch.resolution, arch.resolution)
        session = ort.InferenceSession(onnx_bytes(model, shape), options, providers=["CPUExecutionProvider"])
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            want = model(x).numpy()
        worst = max(worst, float(np.abs(session.run(None, {"input": x.numpy()})[0] - want).max()))
    assert worst < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(
    "mixer, extra",
    [("mhsa", []), ("separable", ["--precision", "fp32", "--target", "iOS17"]), ("additive", []), ("sepvit", [])],
)
def test_coreml_package_of_each_mixer(cli, tmp_path, mixer, extra):
    ct = pytest.importorskip("coremltools")
    arch = small(mixer)
    out = tmp_path / f"{mixer}.mlpackage"
    info = export_json(cli, str(_arch_file(tmp_path, arch)), "--format", "coreml", "--out", str(out), *extra)
    spec = ct.utils.load_spec(str(out))
    assert spec.WhichOneof("Type") == "mlProgram"
    (inp,), (outp,) = spec.description.input, spec.description.output
    assert inp.name == "input" and list(inp.type.multiArrayType.shape) == [1, 3, 192, 192]
    assert outp.name == "logits" and list(outp.type.multiArrayType.shape) == [1, 1000]
    meta = ct.models.MLModel(str(out), skip_model_load=True).user_defined_metadata
    assert Arch.from_dict(json.loads(meta["arch"])) == arch and int(meta["params"]) == info["params"]
    assert float(meta["latency_ms"]) > 0 and "random" in meta["weights"]
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    marker = {"mhsa": "upsample_bilinear", "separable": "pixel_unshuffle", "additive": "reduce_l2_norm", "sepvit": "layer_norm"}[
        mixer
    ]
    assert marker in {op.type for op in block.operations}  # the mixer is in the program (stage 3 MHSA: stride attention)
    assert (info["precision"], info["target"]) == (("fp32", "iOS17") if extra else ("fp16", "iOS16"))
    if extra:
        assert spec.specificationVersion == 8  # iOS17
        assert spec.description.metadata.userDefined["com.github.apple.coremltools.source_dialect"].startswith("TorchExport")
    else:  # a second export replaces the package whole, leaving nothing beside it
        (out / "stale").write_text("x")
        export_json(cli, str(_arch_file(tmp_path, arch)), "--format", "coreml", "--out", str(out))
        assert not (out / "stale").exists() and {p.name for p in tmp_path.iterdir()} == {"arch.yaml", f"{mixer}.mlpackage"}


# ---- weights from a supernet ---------------------------------------------------------------------
def test_supernet_weights_are_the_extracted_subnet(one_line_error, cli, tmp_path):
    tiny = search_spaces.load(TINY)
    torch.manual_seed(3)
    net = supernet.build(tiny)
    with torch.no_grad():  # trained-looking BatchNorm statistics, so that wrong weights would show
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), tmp_path / "plain.ckpt")
    torch.save({"model": net.state_dict(), "epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "train.ckpt")
    arch = tiny.sample(np.random.default_rng(0))
    source = _arch_file(tmp_path, arch)
    want = outputs(net.extract(arch), arch)
    for ckpt in ("plain.ckpt", "train.ckpt"):
        info = export_json(
            cli, str(source), "--format", "pt", "--supernet", str(tmp_path / ckpt), "--out", str(tmp_path / "m.pt")
        )
        assert ckpt in info["weights"]
        assert np.array_equal(outputs(torch.load(tmp_path / "m.pt", weights_only=False), arch), want)
    pytest.importorskip("onnxruntime")
    info = export_json(
        cli, str(source), "--format", "onnx", "--supernet", str(tmp_path / "train.ckpt"), "--out", str(tmp_path / "m.onnx")
    )
    assert info["metadata"]["weights"].endswith("train.ckpt")
    import onnxruntime as ort

    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1)).numpy()
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(got - want).max() < 1e-4
    # a checkpoint of another space, and a file that is no checkpoint
    torch.save({"model": {"slots.x.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    one_line_error(
        *cli(
            "export", str(source), "--format", "pt", "--supernet", str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "x.pt")
        ),
        "other.ckpt",
        "efficientformerv2-tiny",
    )
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    one_line_error(
        *cli("export", str(source), "--format", "pt", "--supernet", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "x.pt")),
        "junk.ckpt",
    )


# ---- run entries and --pick ----------------------------------------------------------------------
def test_any_trial_of_a_run_exports_with_its_accuracy(one_line_error, cli, tmp_path, run_dir):
    out, result = run_dir
    front = {int(e["id"].rpartition("#")[2]) for e in result.pareto}
    entry = next(e for e in result.history if e.number not in front)
    info = export_json(cli, f"{out}#{entry.number}", "--format", "yaml", "--out", str(tmp_path / "a.yaml"))
    assert Arch.from_file(tmp_path / "a.yaml") == entry.arch and info["source"] == f"{out}#{entry.number}"
    pytest.importorskip("onnx")
    info = export_json(cli, f"{out}#{entry.number}", "--format", "onnx", "--out", str(tmp_path / "a.onnx"))
    meta = info["metadata"]
    assert float(meta["accuracy"]) == pytest.approx(entry.accuracy, rel=1e-3) and meta["accuracy_source"] == "synthetic"
    assert meta["source"] == f"{out}#{entry.number}" and int(meta["params"]) == entry["params"]
    one_line_error(
        *cli("export", f"{out}#999", "--format", "yaml", "--out", str(tmp_path / "b.yaml")), "#999", "40 trials", "#0 to #39"
    )
    one_line_error(*cli("export", str(out), "--format", "yaml", "--out", str(tmp_path / "b.yaml")), "--pick", f"{out}#N")


def _picked(cli, tmp_path, out, rule: str) -> str:
    return export_json(cli, str(out), "--pick", rule, "--format", "yaml", "--out", str(tmp_path / "p.yaml"))["source"]


def test_pick_rules(one_line_error, cli, tmp_path, run_dir):
    out, result = run_dir
    front = result.pareto
    assert _picked(cli, tmp_path, out, "best-accuracy") == max(front, key=lambda e: e["accuracy"])["id"]
    assert _picked(cli, tmp_path, out, "best-mes") == max(front, key=lambda e: e["mes"])["id"]
    latency = sorted(e["latency_ms"] for e in front)[len(front) // 2]
    within = [e for e in front if e["latency_ms"] <= latency]
    assert _picked(cli, tmp_path, out, f"latency<={latency * 1000:.6f}us") == max(within, key=lambda e: e["accuracy"])["id"]
    params = sorted(e["params"] for e in front)[len(front) // 2]
    both = [e for e in within if e["params"] <= params]
    if both:
        rule = f"latency<={latency}ms, params<={params / 1e6}M, macs<=10G"
        assert _picked(cli, tmp_path, out, rule) == max(both, key=lambda e: e["accuracy"])["id"]
    assert Arch.from_file(tmp_path / "p.yaml").search_space.name == TINY
    fastest = min(e["latency_ms"] for e in front)
    one_line_error(
        *cli("export", str(out), "--pick", f"latency<={fastest / 2}ms", "--format", "yaml", "--out", str(tmp_path / "q.yaml")),
        "no entry",
        f"smallest latency {fastest:.4g} ms",
    )
    for bad in ("fastest", "latency<=3kg", "depth<=3"):
        one_line_error(
            *cli("export", str(out), "--pick", bad, "--format", "yaml", "--out", str(tmp_path / "q.yaml")), "--pick", bad
        )
    one_line_error(
        *cli("export", "s0", "--pick", "best-mes", "--format", "yaml", "--out", str(tmp_path / "q.yaml")), "run directory"
    )
    assert not (tmp_path / "q.yaml").exists()


# ---- bad input, atomic writes --------------------------------------------------------------------
def _arch_file(tmp_path, arch: Arch):
    path = tmp_path / "arch.yaml"
    arch.save(path)
    return path


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["s0", "--format", "tflite", "--out", "x"], ["tflite", "coreml"]),
        (["s0", "--format", "coreml", "--out", "OUT/m.onnx"], [".mlpackage"]),
        (["s0", "--format", "onnx", "--precision", "fp16", "--out", "OUT/m.onnx"], ["--precision", "coreml"]),
        (["s0", "--format", "coreml", "--target", "iOS12", "--out", "OUT/m.mlpackage"], ["iOS12", "iOS16"]),
        (["s0", "--format", "onnx", "--state-dict", "--out", "OUT/m.onnx"], ["--state-dict", "pt"]),
        (["s0", "--format", "yaml", "--supernet", "OUT/ckpt", "--out", "OUT/m.yaml"], ["--supernet", "yaml"]),
        (["s0", "--format", "onnx", "--out", "OUT/missing/m.onnx"], ["missing"]),
        (["s0", "--format", "pt", "--supernet", "OUT/none.ckpt", "--out", "OUT/m.pt"], ["none.ckpt", "no such file"]),
    ],
)
def test_bad_input_exits_2_with_one_line(one_line_error, cli, tmp_path, argv, needles):
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    one_line_error(*cli("export", *argv), *needles)
    assert list(tmp_path.iterdir()) == []


def test_architecture_outside_its_space_and_non_package_directory(one_line_error, cli, tmp_path):
    data = small("mhsa").to_dict()
    data["widths"] = [20, 32, 64, 128]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    one_line_error(*cli("export", str(tmp_path / "bad.json"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")), "20")
    (tmp_path / "mine.mlpackage").mkdir()
    one_line_error(*cli("export", "s0", "--format", "coreml", "--out", str(tmp_path / "mine.mlpackage")), "not a Core ML package")


def test_a_failed_check_writes_nothing(cli, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    export_module = sys.modules["nas.export.writers"]
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)
    code, out, err = cli("export", str(_arch_file(tmp_path, small("mhsa"))), "--format", "onnx", "--out", str(target))
    assert code == 1 and "differ from PyTorch" in err and "nothing written" in err and len(err.strip().splitlines()) == 1
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["arch.yaml", "m.onnx"]
