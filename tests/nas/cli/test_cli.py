"""The `nas` command line: outputs users read and scripts parse, and the one-line errors of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from nas.cli import main
from search_spaces import Arch

PUBLISHED = {"s0": (3_600_256, 0.396e9), "s1": (6_185_560, 0.652e9), "s2": (12_710_112, 1.247e9), "l": (26_322_288, 2.553e9)}


@pytest.mark.parametrize("preset", ["s0", "s1", "s2", "l"])
def test_arch_show_json_matches_published_counts(cli, preset):
    code, out, err = cli("arch", "show", preset, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    params, macs = PUBLISHED[preset]
    assert data["params"] == params
    assert abs(data["macs"] - macs) / macs < 0.01
    assert sum(row["params"] for row in data["stages"]) == data["params"]
    assert sum(row["macs"] for row in data["stages"]) == data["macs"]
    assert [row["stage"] for row in data["stages"]] == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert Arch.from_dict(data["arch"]) == Arch.from_dict(data["arch"]).search_space.preset(preset)


def test_arch_show_alias_and_text_table(cli):
    code, out, _ = cli("arch", "show", "efficientformerv2_s0")
    assert code == 0
    assert "3,600,256" in out and "stage3" in out and "mhsa" in out


def test_arch_show_of_a_file(cli, tmp_path):
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            Arch.from_dict(
                {
                    "space": "efficientformerv2",
                    "resolution": 192,
                    "depths": [1, 1, 2, 2],
                    "widths": [16, 32, 64, 128],
                    "ratios": [[2], [2], [2, 2], [2, 2]],
                    "mixers": [["additive"], ["separable"], ["mhsa", "none"], ["none", "mhsa"]],
                }
            ).to_dict()
        )
    )
    code, out, _ = cli("arch", "show", str(path), "--json")
    assert code == 0
    assert json.loads(out)["arch"]["resolution"] == 192


def test_spaces_list_and_show(cli):
    code, out, _ = cli("spaces", "--json")
    assert code == 0
    names = {s["name"]: s for s in json.loads(out)}
    assert {"efficientformerv2", "efficientformerv2-tiny"} <= set(names)
    assert names["efficientformerv2-tiny"]["size"] == 276_480
    code, out, _ = cli("spaces", "efficientformerv2", "--json")
    info = json.loads(out)
    assert code == 0 and info["presets"] == ["s0", "s1", "s2", "l", "s0_sepvit"]
    assert info["stages"][2]["mixers"] == ["none", "mhsa", "separable", "additive", "sepvit"]
    assert [(s["sepvit_heads"], s["sepvit_window"]) for s in info["stages"][:3]] == [(1, 7), (2, 7), (4, 7)]
    code, out, _ = cli("spaces", "efficientformerv2")
    assert code == 0 and "stage4" in out and "attention" in out and "sepvit" in out


BAD_ARCH = """space: efficientformerv2
resolution: 224
depths: [2, 2, 6, 4]
widths: [32, 48, 100, 176]
ratios: [[4, 4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]]
mixers: [[none, none], [none, none], [none, none, none, none, mhsa, mhsa], [none, none, mhsa, mhsa]]
"""


@pytest.mark.parametrize(
    "text, needles",
    [
        (BAD_ARCH, ["line 4", "widths[2]", "100", "96"]),
        (
            BAD_ARCH.replace("100", "96").replace("[none, none, mhsa, mhsa]]", "[none, none, conv, mhsa]]"),
            ["line 6", "mixers[3][2]", "conv"],
        ),
        (
            BAD_ARCH.replace("100", "96").replace("mixers: [[none, none], [none, none]", "mixers: [[mhsa, none], [none, none]"),
            ["line 6", "mixers[0][0]", "mhsa", "stage 1"],
        ),
        (BAD_ARCH.replace("100", "96").replace("[4, 3, 3, 4]]", "[4, 3, 3]]"), ["line 5", "ratios[3]", "depth 4"]),
        (BAD_ARCH.replace("resolution: 224", "resolution: 230"), ["line 2", "resolution", "230"]),
        (BAD_ARCH.replace("depths: [2, 2, 6, 4]", "depths: [2, 2, 6, 4\n"), ["malformed YAML"]),
        (BAD_ARCH + "kernel: 3\n", ["line 7", "kernel"]),
        ("", ["empty"]),
    ],
)
def test_arch_show_bad_files_exit_2_with_one_line(one_line_error, cli, tmp_path, text, needles):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    one_line_error(*cli("arch", "show", str(path)), *needles)


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["arch", "show", "s7"], ["s7", "s0, s1, s2, l"]),
        (["arch", "show", "missing.yaml"], ["missing.yaml"]),
        (["arch", "show", "s0", "--space", "nope"], ["nope", "efficientformerv2"]),
        (["arch", "show", "s0", "--frobnicate"], ["--frobnicate"]),
        (["spaces", "nope"], ["nope", "shipped"]),
        (["frobnicate"], ["frobnicate"]),
        (["export", "s0", "--format", "tflite", "--out", "x"], ["tflite", "yaml"]),
        (["arch", "show", "s0", "--device", "pixel9"], ["pixel9"]),
    ],
)
def test_bad_arguments_exit_2_with_one_line(one_line_error, cli, argv, needles):
    one_line_error(*cli(*argv), *needles)


def test_malformed_space_file_names_line(one_line_error, cli, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "name: mine\nresolutions: [224, 222]\nstages:\n  - {depths: [1], widths: [16], ratios: [4], mixers: [none]}\n"
    )
    one_line_error(*cli("spaces", str(path)), "line 2", "resolutions[1]", "222")
    path.write_text(
        "name: mine\nresolutions: [224]\nstages:\n  - {depths: [1], widths: [16], ratios: [4], mixers: [none], kernel: 3}\n"
    )
    one_line_error(*cli("spaces", str(path)), "line 4", "kernel")


def test_export_yaml_round_trip(cli, tmp_path):
    out = tmp_path / "s1.yaml"
    code, stdout, _ = cli("export", "s1", "--format", "yaml", "--out", str(out))
    assert code == 0 and "6,185,560 parameters" in stdout
    arch = Arch.from_file(out)
    assert arch == arch.search_space.preset("s1")
    out_json = tmp_path / "s1.json"
    assert cli("export", str(out), "--format", "yaml", "--out", str(out_json))[0] == 0
    assert Arch.from_file(out_json) == arch and json.loads(out_json.read_text())["widths"] == [32, 48, 120, 224]


def test_export_pt_is_a_standalone_module(cli, tmp_path):
    out = tmp_path / "s0.pt"
    code, stdout, _ = cli("export", "s0", "--format", "pt", "--out", str(out), "--json")
    assert code == 0
    info = json.loads(stdout)
    assert info["params"] == 3_600_256 and info["bytes"] == out.stat().st_size
    model = torch.load(out, weights_only=False)
    assert sum(p.numel() for p in model.parameters()) == 3_600_256
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    assert not list(tmp_path.glob(".*partial*"))


def test_export_to_unwritable_path_loses_nothing(one_line_error, cli, tmp_path):
    existing = tmp_path / "keep.yaml"
    existing.write_text("precious")
    one_line_error(*cli("export", "s0", "--format", "yaml", "--out", str(tmp_path / "no" / "x.yaml")), "no")
    one_line_error(*cli("export", "s0", "--format", "yaml", "--out", str(tmp_path)), "directory")
    assert existing.read_text() == "precious"


def test_run_entries_resolve(one_line_error, cli, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    arch = Arch.from_dict(
        {
            "space": "efficientformerv2",
            "resolution": 224,
            "depths": [1, 1, 2, 2],
            "widths": [32, 48, 96, 176],
            "ratios": [[4], [4], [4, 4], [4, 4]],
            "mixers": [["none"], ["none"], ["none", "mhsa"], ["none", "mhsa"]],
        }
    )
    (run_dir / "pareto.json").write_text(
        json.dumps({"run": str(run_dir), "pareto": [{"id": f"{run_dir}#17", "arch": arch.to_dict()}]})
    )
    code, out, _ = cli("arch", "show", f"{run_dir}#17", "--json")
    assert code == 0 and json.loads(out)["arch"] == arch.to_dict()
    one_line_error(*cli("arch", "show", f"{run_dir}#3"), "#3", "#17")
    one_line_error(*cli("arch", "show", f"{tmp_path}/none#1"), "no search run")


@pytest.mark.subprocess
def test_console_entry_point_exit_codes():
    ok = subprocess.run([sys.executable, "-m", "nas", "arch", "show", "s0", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["params"] == 3_600_256 and ok.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "nas", "arch", "show", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    helped = subprocess.run([sys.executable, "-m", "nas", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "spaces" in helped.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "spaces"],
        ["spaces", "-q"],
        ["--debug", "lut", "list"],
        ["lut", "list", "--debug"],
        ["lut", "-q", "list"],
        ["arch", "show", "s0", "-q", "--progress", "--json"],
    ],
)
def test_common_options_work_in_every_position(cli, argv):
    code, out, err = cli(*argv)
    assert code == 0 and out and err == ""


def test_version_and_shell_completion(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("nas ")
    code, out, _ = cli("--print-completion", "bash")
    assert code == 0 and "complete" in out and "search" in out and "--budget" in out


def test_debug_after_the_command_shows_the_traceback(cli):
    code, out, err = cli("arch", "show", "s7", "--debug")
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("nas: error: ")


def test_an_interrupted_search_says_how_to_continue(tmp_path, monkeypatch, capsys):
    import nas.cli.search as search_command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(search_command, "search", interrupted)
    code = main(["search", "--budget", "params=3M", "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err.strip()
    assert (
        code == 130
        and err == f"nas: interrupted; continue with: nas search --budget params=3M --out {tmp_path / 'run'} -q --resume"
    )
    code = main(["search", "--budget", "params=3M", "-q"])  # no --out: the generated run directory is named
    err = capsys.readouterr().err.strip()
    assert code == 130 and "--out runs/search-" in err and err.endswith("--resume")


def test_train_accelerator_and_the_deprecated_device_spelling(cli, one_line_error, tmp_path):
    code, _, err = cli(
        "train",
        "--data",
        "synthetic:train=16,val=8,classes=2",
        "--out",
        tmp_path / "a.pt",
        "--max-steps",
        "0",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "-q",
        "--json",
    )
    assert code == 0 and "deprecated: use --accelerator" in err
    one_line_error(*cli("train", "--data", "synthetic", "--out", tmp_path / "b.pt", "--accelerator", "tpu"), "tpu")


def test_the_user_data_directory_follows_the_platform_and_nas_home(monkeypatch, tmp_path):
    import latency_lut

    monkeypatch.delenv("NAS_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert latency_lut.user_dir() == tmp_path / "xdg" / "nas" / "luts"
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    assert latency_lut.user_dir() == tmp_path / "home" / "luts"
