"""Fixtures the test packages share: the spaces and tables most tests use, a private ``NAS_HOME``, and
the command line run in-process with its one-line-error check."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import latency_lut
import search_spaces
from nas.cli import main

TINY = "efficientformerv2-tiny"
DEFAULT_DEVICE = "iphone12-coreml"


@pytest.fixture(scope="session")
def space() -> search_spaces.Space:
    """The default space (holds the EfficientFormerV2 presets)."""
    return search_spaces.load(search_spaces.DEFAULT_SPACE)


@pytest.fixture(scope="session")
def tiny() -> search_spaces.Space:
    """The enumerable space (276,480 architectures)."""
    return search_spaces.load(TINY)


@pytest.fixture(scope="session")
def lut() -> latency_lut.LUT:
    """The default device's table."""
    return latency_lut.load(DEFAULT_DEVICE)


@pytest.fixture
def nas_home(tmp_path, monkeypatch):
    """A private user data directory, so user-built tables never leak between tests."""
    monkeypatch.setenv("NAS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """``cli(*argv)`` runs ``nas`` in this process and returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def assert_one_line_error(code: int, out: str, err: str, *needles: str, exit_code: int = 2) -> None:
    """Bad input: the exit code, nothing on stdout, one ``nas: error: ...`` line naming every needle."""
    assert code == exit_code, (code, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def one_line_error() -> Callable[..., None]:
    """:func:`assert_one_line_error` as a fixture."""
    return assert_one_line_error
