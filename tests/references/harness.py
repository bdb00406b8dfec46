"""Run the reference harnesses' own code (NVIDIA's framework packages) from the tests.

The packages (`requirements.txt`) pin dependencies that clash with ours, so they live in a
virtualenv of their own; `.ci/run` builds it and points `EVALFLEET_REFERENCE_PYTHON` at
its interpreter. A test hands a driver script (`drivers/<name>.py`, run by that
interpreter) a JSON payload on stdin and reads its JSON answer from stdout: the driver
calls the reference's code (prompt builders, extractors, scorers, executors) on the
payload and reports what the reference produced.

Without the variable (or a venv at the default place) the tests skip, unless
`EVALFLEET_REQUIRE_REFERENCES=1` (CI), where a missing reference is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DRIVERS = Path(__file__).parent / "drivers"
DEFAULT_VENV = Path.home() / ".cache" / "evalfleet" / "refvenv"


def reference_python() -> str:
    """The reference virtualenv's interpreter, or a skip (a failure where required)."""
    configured = os.environ.get("EVALFLEET_REFERENCE_PYTHON")
    candidate = Path(configured) if configured else DEFAULT_VENV / "bin" / "python"
    if candidate.exists():
        return str(candidate)
    why = f"no reference harness virtualenv at {candidate} (see tests/references/harness.py)"
    if os.environ.get("EVALFLEET_REQUIRE_REFERENCES") == "1":
        pytest.fail(why)
    pytest.skip(why)


def run_reference(driver: str, payload: Any, timeout: float = 900) -> Any:
    """Run `drivers/<driver>.py` in the reference venv on `payload`; its JSON answer."""
    python = reference_python()
    env = {
        **os.environ,
        # The references must never reach a network: data comes in the payload.
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(DRIVERS),
    }
    env.pop("PYTHONHOME", None)
    process = subprocess.run(
        [python, str(DRIVERS / f"{driver}.py")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=DRIVERS,
    )
    if process.returncode != 0:
        sys.stderr.write(process.stderr[-6000:])
        raise AssertionError(f"reference driver {driver} failed (exit {process.returncode})")
    lines = [
        line for line in process.stdout.splitlines() if line.startswith("{") or line.startswith("[")
    ]
    if not lines:
        raise AssertionError(f"reference driver {driver} printed no JSON: {process.stdout[-2000:]}")
    return json.loads(lines[-1])
