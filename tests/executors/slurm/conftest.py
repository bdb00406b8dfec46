"""Fixtures for the Slurm executor tests: configs → invocations, golden files, fake tools."""

from __future__ import annotations

import shlex
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from evalfleet.config import load_config
from evalfleet.contract import Invocation
from evalfleet.executors import wheel as wheel_module
from evalfleet.executors.wheel import Wheel
from evalfleet.planner import plan_invocation
from tests.helpers import assert_matches_golden, stand_in_wheel

from .helpers import override, write_executable

GOLDEN = Path(__file__).parent / "golden"
INVOCATION_ID = "0123abcd"

# A stand-in for evalfleet's own wheel, so rendered scripts do not change with every edit
# of the source; the tests that run the bootstrap ship the real one.
FAKE_WHEEL_DATA = b"not a wheel, a stand-in for one"
FAKE_WHEEL = stand_in_wheel(FAKE_WHEEL_DATA)


@pytest.fixture(autouse=True)
def fixed_wheel(monkeypatch: pytest.MonkeyPatch) -> Wheel:
    """Plans ship FAKE_WHEEL (a module that runs the bootstrap overrides this fixture)."""
    monkeypatch.setattr(wheel_module, "own_wheel", lambda: FAKE_WHEEL)
    return FAKE_WHEEL


@pytest.fixture
def plan_config(tmp_path: Path) -> Callable[..., Invocation]:
    """Write YAML text to a file, load it with overrides, plan it as invocation 0123abcd."""
    count = 0

    def plan(text: str, *overrides: str, output_dir: str = "/lustre/evals") -> Invocation:
        nonlocal count
        count += 1
        path = tmp_path / f"config-{count}.yaml"
        path.write_text(text)
        config = load_config(
            path, overrides=[override("execution.output_dir", output_dir), *overrides]
        )
        return plan_invocation(config.model, invocation_id=INVOCATION_ID)

    return plan


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with golden/<name>; EVALFLEET_UPDATE_GOLDEN=1 rewrites the file instead."""

    def check(name: str, text: str) -> None:
        assert_matches_golden(GOLDEN / name, text)

    return check


@pytest.fixture
def fake_srun() -> Callable[[Path, Path], Path]:
    """A fake `srun` in DIR: records its pid in RECORD, then its arguments on the next
    line, drops its options and execs the command (so the recorded pid is the server's)."""

    def make(directory: Path, record: Path) -> Path:
        return write_executable(
            directory / "srun",
            "#!/bin/bash\n"
            f'printf \'%s\\n%s\\n\' "$$" "$*" > {shlex.quote(str(record))}\n'
            "while [[ $# -gt 0 && $1 == -* ]]; do shift; done\n"
            'exec "$@"\n',
        )

    return make


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
