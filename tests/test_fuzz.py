"""Hostile input for every command: exit code 2, one line on stderr, no traceback, bounded time and memory.

Each case builds its files in a temporary directory and runs the command in this process (tracemalloc
watches the Python allocations it makes, the clock its time). The cases are generated from families of
hostile content (YAML that expands, nests or overflows, binary and empty files, wrong types, paths that
escape, numbers out of range) applied to every kind of file a command reads, and from hostile option
values. ``pytest tests/test_fuzz.py --collect-only -q`` lists them; the README gives the count per command.
"""

from __future__ import annotations

import json
import pickle
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nas.cli import main

TINY = "efficientformerv2-tiny"
S0 = {
    "space": "efficientformerv2",
    "resolution": 224,
    "depths": [2, 2, 6, 4],
    "widths": [32, 48, 96, 176],
    "ratios": [[4, 4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]],
    "mixers": [["none"] * 2, ["none"] * 2, ["none"] * 4 + ["mhsa"] * 2, ["none"] * 2 + ["mhsa"] * 2],
}
MAX_SECONDS = 20.0
MAX_PYTHON_MB = 100.0


# ---- hostile content ------------------------------------------------------------------------------------
def _laughs() -> str:
    """A "billion laughs" file: nine levels of nine aliases, 9**9 values once expanded, 400 bytes."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        name, prev = chr(97 + i), chr(96 + i)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


YAML_FAMILIES: dict[str, str | bytes] = {
    "billion-laughs": _laughs(),
    "deep-flow": "[" * 20000 + "]" * 20000,
    "deep-block": "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
    "self-alias": "a: &a\n  b: *a\n",
    "int-5000-digits": "resolution: " + "9" * 5000 + "\n",
    "binary": bytes(range(256)) * 8,
    "empty": "",
    "only-comment": "# nothing\n",
    "list-root": "- 1\n- 2\n",
    "scalar-root": "hello\n",
    "too-large": "a: " + "x" * (2 << 20) + "\n",
    "malformed": "a: [1, 2\nb: }\n",
    "tabs-and-nul": "a:\t\x00b\n",
    "duplicate-keys": "resolution: 224\nresolution: 192\n",
    "non-scalar-key": "? [a, b]\n: 1\n",
}


def _arch(**changes) -> str:
    return json.dumps({**S0, **changes})


ARCH_FAMILIES: dict[str, str | bytes] = {
    **YAML_FAMILIES,
    "space-path-traversal": _arch(space="../../../../etc/passwd"),
    "space-absolute-path": _arch(space="/etc/hostname"),
    "space-not-a-string": _arch(space=["efficientformerv2"]),
    "resolution-nan": _arch(resolution=float("nan")).replace("NaN", ".nan"),
    "resolution-huge": _arch(resolution=10**30),
    "resolution-bool": _arch(resolution=True),
    "resolution-float": _arch(resolution=224.5),
    "depth-negative": _arch(depths=[-2, 2, 6, 4]),
    "width-string": _arch(widths=["32", 48, 96, 176]),
    "ratio-inf": _arch().replace('"ratios": [[4, 4]', '"ratios": [[.inf, 4]'),
    "ratio-zero": _arch(ratios=[[0, 4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]]),
    "mixer-unknown": _arch(mixers=[["swin"] * 2, ["none"] * 2, ["none"] * 6, ["none"] * 4]),
    "mixer-number": _arch(mixers=[[1, 2], ["none"] * 2, ["none"] * 6, ["none"] * 4]),
    "stages-1000": _arch(depths=[1] * 1000, widths=[32] * 1000),
    "ratios-short": _arch(ratios=[[4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]]),
    "unknown-key": _arch(kernel=3),
    "missing-key": json.dumps({k: v for k, v in S0.items() if k != "widths"}),
}

SPACE_FAMILIES: dict[str, str | bytes] = {
    **YAML_FAMILIES,
    "stages-not-list": "name: x\nresolutions: [224]\nstages: 3\n",
    "resolution-odd": "name: x\nresolutions: [225]\nstages:\n  - {depths: [1], widths: [16], ratios: [4], mixers: [none]}\n",
    "width-zero": "name: x\nresolutions: [224]\nstages:\n  - {depths: [1], widths: [0], ratios: [4], mixers: [none]}\n",
    "depth-huge": "name: x\nresolutions: [224]\nstages:\n  - {depths: ["
    + "9" * 50
    + "], widths: [16], ratios: [4], mixers: [none]}\n",
    "mixer-unknown": "name: x\nresolutions: [224]\nstages:\n  - {depths: [1], widths: [16], ratios: [4], mixers: [conv]}\n",
    "classes-negative": "name: x\nresolutions: [224]\nnum_classes: -1\nstages:\n  - {depths: [1], widths: [16], ratios: [4], mixers: [none]}\n",
}


def _table() -> dict:
    import latency_lut

    return json.loads(Path(latency_lut.load("ci-cpu-onnxruntime").path).read_text())


def _table_with(mutate: Callable[[dict], None]) -> str:
    data = _table()
    mutate(data)
    return json.dumps(data)


TABLE_FAMILIES: dict[str, Callable[[], str | bytes]] = {
    "binary": lambda: bytes(range(256)) * 8,
    "empty": lambda: "",
    "truncated": lambda: json.dumps(_table())[:5000],
    "list": lambda: "[1, 2, 3]",
    "int-5000-digits": lambda: '{"schema": ' + "9" * 5000 + "}",
    "deep-nesting": lambda: "[" * 100000 + "]" * 100000,
    "calibration-nan": lambda: _table_with(lambda d: d["calibration"].update(scale=float("nan"))),
    "calibration-negative": lambda: _table_with(lambda d: d["calibration"].update(scale=-1.0)),
    "calibration-string": lambda: _table_with(lambda d: d["calibration"].update(offset_ms="fast")),
    "calibration-list": lambda: _table_with(lambda d: d.update(calibration=[1, 2])),
    "entry-nan": lambda: _table_with(lambda d: next(iter(d["entries"].values())).update(ms=float("nan"))),
    "entry-negative": lambda: _table_with(lambda d: next(iter(d["entries"].values())).update(ms=-0.1)),
    "entry-string": lambda: _table_with(lambda d: next(iter(d["entries"].values())).update(ms="x")),
    "threads-string": lambda: _table_with(lambda d: d.update(threads="one")),
    "space-path": lambda: _table_with(lambda d: d.update(space="../../etc/passwd")),
    "resolutions-bad": lambda: _table_with(lambda d: d.update(resolutions="224")),
    "schema-future": lambda: _table_with(lambda d: d.update(schema=99)),
    "backend-unknown": lambda: _table_with(lambda d: d.update(backend="tpu")),
    "no-entries": lambda: _table_with(lambda d: d.update(entries={})),
}


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


def _malicious_checkpoint(path: Path) -> Path:
    class Payload:
        def __reduce__(self):
            return (open, (str(path.with_suffix(".pwned")), "w"))

    torch.save({"model": {"w": torch.zeros(1)}, "x": Payload()}, path)
    return path


CHECKPOINT_FAMILIES: dict[str, Callable[[Path], Path]] = {
    "empty": lambda p: _write(p, b""),
    "garbage": lambda p: _write(p, bytes(range(256)) * 64),
    "json": lambda p: _write(p, '{"model": {}}'),
    "truncated-zip": lambda p: _write(p, _zip_bytes()[:300]),
    "malicious-pickle": _malicious_checkpoint,
    "raw-pickle-payload": lambda p: _write(p, pickle.dumps({"a": 1}) + b"x"),
    "tensors-not-a-supernet": lambda p: (torch.save({"w": torch.zeros(3)}, p), p)[1],
    "fake-nas-train": lambda p: (torch.save({"format": "nas-train", "version": 1, "kind": "supernet"}, p), p)[1],
    "nas-train-space-path": lambda p: (
        torch.save(
            {
                "format": "nas-train",
                "version": 1,
                "kind": "supernet",
                "model": {},
                "settings": {},
                "history": [],
                "space": {"ref": "/etc/passwd", "base_ref": "/etc/passwd"},
            },
            p,
        ),
        p,
    )[1],
    "directory": lambda p: (p.mkdir(), p)[1],
}


def _zip_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(100)}, buffer)
    return buffer.getvalue()


def _run_dir(tmp: Path, run_yaml: str | bytes | None = None, study: bytes | None = None, pareto: str | None = None) -> Path:
    run = tmp / "run"
    run.mkdir()
    if run_yaml is not None:
        _write(run / "run.yaml", run_yaml)
    if study is not None:
        _write(run / "study.db", study)
    if pareto is not None:
        _write(run / "pareto.json", pareto)
    return run


VALID_RUN_YAML = (
    "settings: {space: efficientformerv2-tiny, objectives: [accuracy, latency, params], budget: {params: 2500000},"
    " strategy: evolution, reference: {accuracy: 0, latency_ms: 1, params: 2500000}}\n"
)


# ---- the cases ----------------------------------------------------------------------------------------------
def _cases() -> list[tuple[str, str, Callable[[Path], list[str]]]]:
    """(command, case name, build(tmp) -> argv)."""
    cases = []

    def add(command: str, name: str, build: Callable[[Path], list[str]]) -> None:
        cases.append((command, name, build))

    for name, text in SPACE_FAMILIES.items():
        add("spaces", f"space-file:{name}", lambda t, text=text: ["spaces", str(_write(t / "space.yaml", text))])
    for name, text in ARCH_FAMILIES.items():
        add("arch show", f"arch-file:{name}", lambda t, text=text: ["arch", "show", str(_write(t / "a.yaml", text))])
        add(
            "export",
            f"arch-file:{name}",
            lambda t, text=text: ["export", str(_write(t / "a.yaml", text)), "--format", "yaml", "--out", str(t / "o.yaml")],
        )
        add(
            "train",
            f"arch-file:{name}",
            lambda t, text=text: [
                "train",
                "--data",
                "synthetic",
                "--arch",
                str(_write(t / "a.yaml", text)),
                "--out",
                str(t / "c.pt"),
            ],
        )
    for name, text in SPACE_FAMILIES.items():
        add(
            "search",
            f"space-file:{name}",
            lambda t, text=text: [
                "search",
                "--budget",
                "params=3M",
                "--space",
                str(_write(t / "s.yaml", text)),
                "--out",
                str(t / "r"),
            ],
        )
        add(
            "lut build",
            f"space-file:{name}",
            lambda t, text=text: [
                "lut",
                "build",
                "--device",
                "x",
                "--space",
                str(_write(t / "s.yaml", text)),
                "--out",
                str(t / "x.json"),
            ],
        )
    for name, make in TABLE_FAMILIES.items():
        add(
            "arch show",
            f"table:{name}",
            lambda t, make=make: ["arch", "show", "s0", "--device", str(_write(t / "t.json", make()))],
        )
        add(
            "lut validate",
            f"table:{name}",
            lambda t, make=make: ["lut", "validate", "--device", str(_write(t / "t.json", make())), "--samples", "3"],
        )
        add(
            "search",
            f"table:{name}",
            lambda t, make=make: [
                "search",
                "--budget",
                "params=3M",
                "--device",
                str(_write(t / "t.json", make())),
                "--out",
                str(t / "r"),
            ],
        )
    for name, make in CHECKPOINT_FAMILIES.items():
        add(
            "export",
            f"checkpoint:{name}",
            lambda t, make=make: [
                "export",
                "s0",
                "--format",
                "pt",
                "--supernet",
                str(make(t / "c.pt")),
                "--out",
                str(t / "m.pt"),
            ],
        )
        add(
            "search",
            f"checkpoint:{name}",
            lambda t, make=make: [
                "search",
                "--space",
                TINY,
                "--budget",
                "params=2.5M",
                "--accuracy",
                "supernet",
                "--supernet",
                str(make(t / "c.pt")),
                "--out",
                str(t / "r"),
            ],
        )
        add(
            "train",
            f"checkpoint:{name}",
            lambda t, make=make: ["train", "--data", "synthetic", "--supernet", str(make(t / "c.pt")), "--out", str(t / "o.pt")],
        )
        add(
            "train",
            f"resume-checkpoint:{name}",
            lambda t, make=make: ["train", "--data", "synthetic", "--out", str(make(t / "c.pt")), "--resume"],
        )
    for name, value in {
        "1e309": "params=1e309",
        "nan": "params=nan",
        "negative": "params=-3M",
        "zero": "latency=0ms",
        "digits": "params=" + "9" * 5000,
        "unit": "latency=1h",
        "key": "flops=3G",
        "empty": "",
        "twice": "params=3M params=4M",
        "unicode-digits": "params=٣M",
        "no-value": "params=",
    }.items():
        add("search", f"budget:{name}", lambda t, value=value: ["search", "--budget", value, "--out", str(t / "r")])
    for option, values in {
        "--seed": ["-1", "x", "1e3"],
        "--trials": ["0", "-5", "many"],
        "--population": ["1", "0"],
        "--objectives": ["accuracy", "speed,latency", "accuracy,accuracy", ""],
        "--mes-alpha": ["latency", "latency=x", "foo=1"],
        "--mes-unit": ["params=x", "latency=-1ms"],
        "--storage": ["nosuch://x", "sqlite:////nonexistent/dir/x.db"],
        "--strategy": ["annealing"],
        "--sampler": ["cmaes"],
        "--accuracy": ["oracle"],
        "--proxy": ["zen"],
    }.items():
        for value in values:
            add(
                "search",
                f"option:{option}={value}",
                lambda t, option=option, value=value: ["search", "--budget", "params=3M", option, value, "--out", str(t / "r")],
            )
    add(
        "search",
        "proxy-with-supernet",
        lambda t: ["search", "--budget", "params=3M", "--supernet", "x.pt", "--out", str(t / "r")],
    )
    add(
        "search",
        "supernet-missing",
        lambda t: ["search", "--budget", "params=3M", "--accuracy", "supernet", "--out", str(t / "r")],
    )
    add("search", "out-is-a-file", lambda t: ["search", "--budget", "params=3M", "--out", str(_write(t / "f", "x"))])
    add("search", "resume-no-run", lambda t: ["search", "--out", str(t / "none"), "--resume"])
    add("search", "resume-no-out", lambda t: ["search", "--resume"])
    for name, text in {**YAML_FAMILIES, "no-settings": "a: 1\n", "settings-list": "settings: [1]\n"}.items():
        add(
            "search",
            f"resume-run-yaml:{name}",
            lambda t, text=text: ["search", "--out", str(_run_dir(t, run_yaml=text)), "--resume"],
        )
        add("pareto", f"run-yaml:{name}", lambda t, text=text: ["pareto", str(_run_dir(t, run_yaml=text))])
        add("arch show", f"run-yaml:{name}", lambda t, text=text: ["arch", "show", f"{_run_dir(t, run_yaml=text)}#0"])
    for name, content in {"garbage": bytes(range(256)) * 64, "empty": b"", "text": b"not a database"}.items():
        add("pareto", f"study-db:{name}", lambda t, content=content: ["pareto", str(_run_dir(t, VALID_RUN_YAML, content))])
    add("pareto", "study-db:missing", lambda t: ["pareto", str(_run_dir(t, VALID_RUN_YAML))])
    add("pareto", "not-a-run", lambda t: ["pareto", str(t)])
    for name, text in {
        "list": "[1]",
        "malformed": "{",
        "no-pareto": "{}",
        "entries-not-dicts": '{"pareto": [1]}',
        "digits": '{"pareto": ' + "9" * 5000 + "}",
    }.items():
        add(
            "export",
            f"pareto-json:{name}",
            lambda t, text=text: [
                "export",
                str(_run_dir(t, pareto=text)),
                "--pick",
                "best-accuracy",
                "--format",
                "yaml",
                "--out",
                str(t / "o.yaml"),
            ],
        )
    for ref in ["#٣", "#-1", "#1e3", "#", "#0x1", "#１"]:
        add("arch show", f"run-entry:{ref}", lambda t, ref=ref: ["arch", "show", f"{_run_dir(t, VALID_RUN_YAML)}{ref}"])
    for rule in ["latency<=fast", "best-speed", "params<=", "accuracy>>70", "latency<=1e309ms"]:
        add(
            "export",
            f"pick:{rule}",
            lambda t, rule=rule: [
                "export",
                str(_run_dir(t, VALID_RUN_YAML)),
                "--pick",
                rule,
                "--format",
                "yaml",
                "--out",
                str(t / "o.yaml"),
            ],
        )
    for name, argv in {
        "format": ["--format", "tflite"],
        "out-missing-dir": ["--format", "onnx", "--out-dir"],
        "precision-onnx": ["--format", "onnx", "--precision", "fp16"],
        "target": ["--format", "coreml", "--target", "iOS1"],
        "state-dict-onnx": ["--format", "onnx", "--state-dict"],
    }.items():
        add(
            "export",
            f"option:{name}",
            lambda t, argv=argv: [
                "export",
                "s0",
                *argv[:2],
                *argv[2:],
                "--out",
                str(t / ("x.mlpackage" if "coreml" in argv else "x.onnx")),
            ],
        )
    add("export", "out-in-missing-dir", lambda t: ["export", "s0", "--format", "yaml", "--out", str(t / "no" / "x.yaml")])
    add("export", "out-is-a-directory", lambda t: ["export", "s0", "--format", "yaml", "--out", str(t)])
    add(
        "export",
        "coreml-not-a-package",
        lambda t: ["export", "s0", "--format", "coreml", "--out", str(_write(t / "x.mlpackage", "x"))],
    )
    for name, source in {
        "missing": "/nonexistent/data",
        "synthetic-bad": "synthetic:train=x",
        "synthetic-classes": "synthetic:classes=1",
        "synthetic-key": "synthetic:foo=1",
        "fashion-dir": "fashion-mnist:/nonexistent",
    }.items():
        add("train", f"data:{name}", lambda t, source=source: ["train", "--data", source, "--out", str(t / "c.pt")])
    for name, make in {
        "one-class": _one_class,
        "corrupt-image": _corrupt_image,
        "empty-folders": _empty_folders,
        "no-classes": lambda t: t,
    }.items():
        add("train", f"image-folder:{name}", lambda t, make=make: ["train", "--data", str(make(t)), "--out", str(t / "c.pt")])
    for option, value in {
        "--lr": "-1",
        "--epochs": "0",
        "--batch-size": "0",
        "--resolution": "31",
        "--drop-path": "1.5",
        "--save-every": "0",
        "--max-steps": "-1",
        "--train-images": "0",
        "--sample-gap": "0.5",
        "--calib-batches": "0",
        "--distill": "js",
        "--accelerator": "tpu",
    }.items():
        add(
            "train",
            f"option:{option}={value}",
            lambda t, option=option, value=value: ["train", "--data", "synthetic", option, value, "--out", str(t / "c.pt")],
        )
    add("train", "out-in-missing-dir", lambda t: ["train", "--data", "synthetic", "--out", str(t / "no" / "c.pt")])
    add("train", "out-exists-without-resume", lambda t: ["train", "--data", "synthetic", "--out", str(_write(t / "c.pt", "x"))])
    for name, content in {
        "malformed-json": "{",
        "json-list": "[1, 2]",
        "digits": '{"a": ' + "9" * 5000 + "}",
        "csv-header": "k,v\n",
        "csv-non-numeric": "key,ms\nffn:c32:g56:e4,fast\n",
        "csv-negative": "key,ms\nffn:c32:g56:e4,-1\n",
        "csv-nan": "key,ms\nffn:c32:g56:e4,nan\n",
        "csv-duplicate": "key,ms\nffn:c32:g56:e4,1\nffn:c32:g56:e4,2\n",
        "unknown-key": '{"blocks": {"conv:c1:g1": 1.0}}',
        "missing-keys": '{"blocks": {}}',
        "blocks-list": '{"blocks": [1]}',
        "binary": bytes(range(256)),
    }.items():
        suffix = ".csv" if name.startswith("csv") else ".json"
        add(
            "lut import",
            f"measurements:{name}",
            lambda t, content=content, suffix=suffix: [
                "lut",
                "import",
                str(_write(t / f"m{suffix}", content)),
                "--device",
                "p",
                "--space",
                TINY,
                "--out",
                str(t / "p.json"),
            ],
        )
    add(
        "lut import",
        "measurements:missing",
        lambda t: ["lut", "import", str(t / "none.json"), "--device", "p", "--out", str(t / "p.json")],
    )
    for name, content in {
        "malformed": "{",
        "list": "[1]",
        "missing": None,
        "models-not-list": '{"models": 3}',
        "model-no-arch": '{"models": [{"id": "a"}]}',
    }.items():
        add(
            "lut import",
            f"manifest:{name}",
            lambda t, content=content: [
                "lut",
                "import",
                str(_write(t / "m.json", json.dumps({"blocks": _tiny_blocks(), "models": {"a": 1.0}}))),
                "--device",
                "p",
                "--space",
                TINY,
                "--out",
                str(t / "p.json"),
                "--manifest",
                str(t / "none.json") if content is None else str(_write(t / "man.json", content)),
            ],
        )
    add(
        "lut import",
        "out-in-missing-dir",
        lambda t: [
            "lut",
            "import",
            str(_write(t / "m.json", json.dumps(_tiny_blocks()))),
            "--device",
            "p",
            "--space",
            TINY,
            "--out",
            str(t / "no" / "p.json"),
        ],
    )
    add("lut import", "no-device", lambda t: ["lut", "import", str(_write(t / "m.json", "{}"))])
    for name, content in {
        "malformed": "{",
        "list": "[1]",
        "non-numeric": '{"models": {"MODEL": "fast"}}',
        "negative": '{"models": {"MODEL": -1}}',
        "zero": '{"MODEL": 0}',
        "nan": '{"models": {"MODEL": NaN}}',
        "unknown-model": '{"models": {"MODEL": 1.0, "nosuchmodel": 1.0}}',
        "missing-model": "{}",
        "csv-header": "id,ms\nMODEL,1\n",
        "csv-duplicate": "key,ms\nMODEL,1\nMODEL,2\n",
        "binary": bytes(range(256)),
    }.items():
        suffix = ".csv" if name.startswith("csv") else ".json"
        add(
            "lut fit",
            f"measurements:{name}",
            lambda t, content=content, suffix=suffix: _fit_argv(t, content, suffix),
        )
    for name, content in {"malformed": "{", "blocks-manifest": '{"blocks": [], "models": []}', "missing": None}.items():
        add(
            "lut fit",
            f"manifest:{name}",
            lambda t, content=content: [
                "lut",
                "fit",
                "--device",
                "p",
                "--measurements",
                str(_write(t / "m.json", "{}")),
                "--manifest",
                str(t / "none.json") if content is None else str(_write(t / "man.json", content)),
                "--out",
                str(t / "p.json"),
            ],
        )
    for name, extra in {"n-too-small": ["--n", "2"], "backend": ["--backend", "tpu"], "space": ["--space", "nosuch"]}.items():
        add("lut export-models", name, lambda t, extra=extra: ["lut", "export-models", "--out", str(t / "models"), *extra])
    add(
        "lut export-models",
        "out-is-a-file",
        lambda t: [
            "lut",
            "export-models",
            "--backend",
            "torchscript",
            "--n",
            "3",
            "--space",
            TINY,
            "--out",
            str(_write(t / "f", "x")),
        ],
    )
    for option, value in {"--threads": "0", "--passes": "0", "--backend": "tpu"}.items():
        add(
            "lut build",
            f"option:{option}={value}",
            lambda t, option=option, value=value: ["lut", "build", "--device", "x", option, value, "--out", str(t / "x.json")],
        )
    add("lut build", "no-device", lambda t: ["lut", "build", "--out", str(t / "x.json")])
    add("lut build", "out-is-a-directory", lambda t: ["lut", "build", "--device", "x", "--space", TINY, "--out", str(t)])
    add(
        "lut build",
        "resume-garbage-partial",
        lambda t: (
            _write(t / "x.json.partial.json", bytes(range(256))),
            ["lut", "build", "--device", "x", "--space", TINY, "--out", str(t / "x.json"), "--resume"],
        )[1],
    )
    add(
        "lut build",
        "resume-list-partial",
        lambda t: (
            _write(t / "x.json.partial.json", "[1]"),
            ["lut", "build", "--device", "x", "--space", TINY, "--out", str(t / "x.json"), "--resume"],
        )[1],
    )
    add("lut validate", "samples-too-few", lambda t: ["lut", "validate", "--samples", "1"])
    add("lut validate", "unknown-device", lambda t: ["lut", "validate", "--device", "pixel9"])
    add("lut export-blocks", "backend", lambda t: ["lut", "export-blocks", "--backend", "onnxruntime", "--out", str(t / "b")])
    add("lut export-blocks", "precision", lambda t: ["lut", "export-blocks", "--precision", "int4", "--out", str(t / "b")])
    for name, text in SPACE_FAMILIES.items():
        add(
            "lut export-blocks",
            f"space-file:{name}",
            lambda t, text=text: ["lut", "export-blocks", "--space", str(_write(t / "s.yaml", text)), "--out", str(t / "b")],
        )
    for name, argv in {
        "plot-suffix": ["--plot", "x.svg"],
        "plot-missing-dir": ["--plot", "/nonexistent/x.png"],
        "axis": ["--plot", "x.png", "--x", "speed"],
        "same-axes": ["--plot", "x.png", "--x", "mes", "--y", "mes"],
        "axes-without-plot": ["--x", "mes"],
    }.items():
        add("pareto", f"option:{name}", lambda t, argv=argv: ["pareto", str(_run_dir(t, VALID_RUN_YAML)), *argv])
    for argv in (["frobnicate"], ["lut", "frobnicate"], ["arch"], ["spaces", "--frobnicate"], ["search", "--budget"]):
        add("usage", "argv:" + " ".join(argv), lambda t, argv=argv: list(argv))
    return cases


def _fit_argv(t: Path, content: str | bytes, suffix: str) -> list[str]:
    """``nas lut fit`` on a manifest of three tiny-space models and `content` as the measurements
    (``MODEL`` in it stands for the first model's id; the others are measured correctly)."""
    import random

    import search_spaces

    space = search_spaces.load(TINY)
    archs = [space.sample(random.Random(i)) for i in range(3)]
    manifest = {"kind": "fit-models", "models": [{"id": a.id, "arch": a.to_dict()} for a in archs]}
    if isinstance(content, str):
        rest = "".join(f', "{a.id}": 1.0' for a in archs[1:])
        content = content.replace("MODEL", archs[0].id)
        if content.startswith('{"models": {') and content.endswith("}}"):
            content = content[:-2] + rest + "}}"
        elif content.startswith("{") and content.endswith("}") and content != "{}" and "models" not in content:
            content = content[:-1] + rest + "}"
    return [
        "lut",
        "fit",
        "--device",
        "p",
        "--measurements",
        str(_write(t / f"m{suffix}", content)),
        "--manifest",
        str(_write(t / "manifest.json", json.dumps(manifest))),
        "--out",
        str(t / "p.json"),
    ]


def _tiny_blocks() -> dict[str, float]:
    import search_spaces

    return {spec.key: 0.01 for spec in search_spaces.load(TINY).all_layers()}


def _images(t: Path, classes: list[str], n: int = 3) -> Path:
    from PIL import Image

    root = t / "images"
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(root / c / f"{i}.png")
    return root


def _one_class(t: Path) -> Path:
    return _images(t, ["only"])


def _corrupt_image(t: Path) -> Path:
    root = _images(t, ["a", "b"])
    _write(root / "a" / "broken.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    return root


def _empty_folders(t: Path) -> Path:
    root = t / "images"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    return root


CASES = _cases()


@pytest.mark.parametrize("command,name,build", CASES, ids=[f"{c}|{n}" for c, n, _ in CASES])
def test_hostile_input_is_one_line_exit_2(command, name, build, tmp_path, monkeypatch, capsys, one_line_error):
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    argv = build(tmp_path)
    capsys.readouterr()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        code = main([str(a) for a in argv])
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    one_line_error(code, out, err)
    assert seconds < MAX_SECONDS, f"{seconds:.1f} s"
    assert peak < MAX_PYTHON_MB, f"{peak:.0f} MB of Python allocations"
    assert not list(tmp_path.glob("*.pwned")), "a checkpoint's code ran"


def test_the_fuzz_suite_covers_every_command():
    from nas.cli import COMMANDS

    covered = {command for command, _, _ in CASES}
    assert {cls.name for cls in COMMANDS} - {"lut list"} <= covered  # lut list reads no user input but tables (below)


def test_lut_list_reports_hostile_user_tables_and_still_lists(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("NAS_HOME", str(tmp_path))
    (tmp_path / "luts").mkdir()
    for name, make in TABLE_FAMILIES.items():
        _write(tmp_path / "luts" / f"{name}.json", make())
    code, out, err = cli("lut", "list", "--json")
    listed = {t["device"]: t for t in json.loads(out)}
    assert code == 0 and "Traceback" not in err
    assert all("error" in listed[name] for name in TABLE_FAMILIES)


def test_a_billion_laughs_file_is_refused_in_under_a_second_and_100_mb(tmp_path):
    import search_spaces
    from search_spaces import SpaceError

    path = _write(tmp_path / "laughs.yaml", YAML_FAMILIES["billion-laughs"])
    tracemalloc.start()
    times = []
    for _ in range(3):  # the fastest of three: an expansion takes minutes, a loaded CI machine seconds
        started = time.perf_counter()
        with pytest.raises(SpaceError, match="values"):
            search_spaces.load(str(path))
        times.append(time.perf_counter() - started)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert min(times) < 1.0 and peak < 100, (times, peak)


def _worker_images(t: Path) -> Path:
    """Two classes of JPEGs, one of them truncated past its header: it passes the check of every file
    before training and fails only when a DataLoader worker decodes it."""
    import io

    import numpy as np
    from PIL import Image

    root = _images(t, ["a", "b"], n=4)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buffer, "JPEG")
    _write(root / "a" / "truncated.jpg", buffer.getvalue()[: int(len(buffer.getvalue()) * 0.7)])
    return root


def test_an_image_a_worker_cannot_decode_is_one_line(tmp_path, cli, one_line_error):
    root = _worker_images(tmp_path)
    one_line_error(
        *cli(
            "train",
            "--data",
            root,
            "--out",
            tmp_path / "c.pt",
            "--workers",
            "1",
            "--batch-size",
            "2",
            "--resolution",
            "32",
            "--space",
            TINY,
        ),
        "truncated.jpg",
    )


@pytest.mark.subprocess
def test_a_write_the_file_system_refuses_is_one_line_and_loses_nothing(tmp_path):
    """A file-size limit makes every large write fail as a full disk would: the export and the training
    checkpoint each end in one line, and the file that was there is untouched."""
    import subprocess
    import sys

    script = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from nas.cli import main
sys.exit(main(sys.argv[1:]))
"""
    root = Path(__file__).resolve().parents[1]
    for argv, target in (
        (["export", "s1", "--format", "pt"], tmp_path / "s1.pt"),
        (
            ["train", "--data", "synthetic:train=16,val=8", "--max-steps", "1", "--batch-size", "8", "--resume", "-q"],
            tmp_path / "c.pt",
        ),
    ):
        if argv[0] == "export":
            target.write_bytes(b"previous")
        result = subprocess.run(
            [sys.executable, "-c", script, *argv, "--out", str(target)], capture_output=True, text=True, cwd=root
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"nas: error: cannot write {target}"), (
            result.stderr
        )
        assert not target.exists() or target.read_bytes() == b"previous"
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file left behind
