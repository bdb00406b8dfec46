"""The code sandbox: results, limits, and nothing left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

from evalfleet.scoring.sandbox import run_python


def test_pass_fail_and_the_reason():
    assert run_python("assert 1 + 1 == 2\n").passed
    outcome = run_python("assert 1 + 1 == 3, 'arithmetic'\n")
    assert (outcome.passed, outcome.status) == (False, "failed")
    assert outcome.detail == "AssertionError: arithmetic"


def test_timeout_kills_the_whole_group(tmp_path):
    marker = tmp_path / "child.pid"
    program = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    outcome = run_python(program, timeout_s=1.5)
    assert outcome.status == "timeout" and time.monotonic() - started < 10
    child = int(marker.read_text())
    time.sleep(0.2)
    try:
        os.kill(child, 0)
        state = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()[0]
        assert state == "Z", "the program's child must not survive it"
    except ProcessLookupError:
        pass


def test_memory_is_capped():
    outcome = run_python("x = bytearray(4 * 1024**3)\n")
    assert not outcome.passed and "MemoryError" in outcome.detail


def test_runs_in_a_fresh_scratch_directory_with_a_bare_environment(monkeypatch):
    monkeypatch.setenv("EVALFLEET_SECRET_FOR_TEST", "hunter2")
    program = (
        "import os\n"
        "assert 'EVALFLEET_SECRET_FOR_TEST' not in os.environ\n"
        "assert os.listdir('.') == ['program.py'], os.listdir('.')\n"
        "open('scratch.txt', 'w').write('x')\n"
    )
    assert run_python(program).passed
