"""No code from user files: a checkpoint that would run code when unpickled is refused (exit 2, one line)
by every command that reads one, and its payload never runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch


class Payload:
    """Unpickling this creates `marker` (a harmless stand-in for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious(tmp_path: Path, form: str) -> tuple[Path, Path]:
    """A checkpoint whose loading with weights_only=False would create a marker file, and that marker."""
    marker = tmp_path / f"pwned-{form}"
    path = tmp_path / f"evil-{form}.pt"
    state = {"model": {"w": torch.zeros(1)}, "settings": Payload(marker)}
    if form == "zip":
        torch.save(state, path)
    else:  # the legacy raw-pickle form torch.load also reads
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=2)
    return path, marker


def commands(ckpt: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "export --supernet": ["export", "s0", "--format", "pt", "--supernet", str(ckpt), "--out", str(tmp_path / "m.pt")],
        "search --supernet": [
            "search",
            "--space",
            "efficientformerv2-tiny",
            "--accuracy",
            "supernet",
            "--supernet",
            str(ckpt),
            "--budget",
            "params=2.5M",
            "--trials",
            "2",
            "--out",
            str(tmp_path / "run"),
            "-q",
        ],
        "train --supernet": [
            "train",
            "--data",
            "synthetic",
            "--supernet",
            str(ckpt),
            "--out",
            str(tmp_path / "t.pt"),
            "--max-steps",
            "1",
            "-q",
        ],
        "train --resume": ["train", "--data", "synthetic", "--out", str(ckpt), "--resume", "-q"],
    }


@pytest.mark.parametrize("form", ["zip", "pickle"])
@pytest.mark.parametrize("command", ["export --supernet", "search --supernet", "train --supernet", "train --resume"])
def test_malicious_checkpoint_is_refused_without_running(cli, one_line_error, tmp_path, form, command):
    ckpt, marker = malicious(tmp_path, form)
    result = cli(*commands(ckpt, tmp_path)[command])
    assert not marker.exists(), "the checkpoint's code ran"
    one_line_error(*result, str(ckpt))
