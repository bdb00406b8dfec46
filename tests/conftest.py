"""Shared fixtures: every test gets its own evalfleet home and working directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from evalfleet.cli.main import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
GUIDE = Path(__file__).parent / "fixtures" / "guide"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "evalfleet-home"
    monkeypatch.setenv("EVALFLEET_HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `evalfleet ARGS…` in-process; any uncaught exception fails the test."""

    def invoke(*args: str) -> CliResult:
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def write_yaml(tmp_path: Path):
    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
