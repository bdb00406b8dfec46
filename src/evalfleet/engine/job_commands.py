"""A job's `pre_cmd` and `post_cmd`, with NeMo Evaluator Launcher's meaning.

The launcher `source`s pre_cmd in the shell that then starts the evaluation, so what it
exports reaches the task; post_cmd runs after the evaluation however it ended. Here the
task runs in this process: pre_cmd runs in bash in the job's directory, with the job's
environment, and the variables it leaves set or changed become part of that environment
(`engine/environ.py`), never of this process's, which other jobs may share.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from evalfleet.exceptions import EngineError

TRUST_VARIABLE = "NEMO_EVALUATOR_TRUST_PRE_CMD"


class JobCommandError(EngineError):
    """pre_cmd failed: the task does not run (as the launcher's `&&` chain stops)."""


def run_pre_cmd(command: str, cwd: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Run `command` as bash sources it, in `env`; `env` with what it exported."""
    script = f"source /dev/stdin <<'EVALFLEET_PRE_CMD'\n{command}\nEVALFLEET_PRE_CMD\nenv -0"
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=dict(env), capture_output=True, check=False
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise JobCommandError(f"pre_cmd exited with {done.returncode}: {tail[0]}".rstrip(": "))
    after = dict(
        entry.split("=", 1)
        for entry in done.stdout.decode(errors="replace").split("\0")
        if "=" in entry
    )
    merged = dict(env)
    for name, value in after.items():
        if env.get(name) != value and name not in ("SHLVL", "_", "PWD", "OLDPWD"):
            merged[name] = value
    return merged


def run_post_cmd(command: str, cwd: Path, env: Mapping[str, str]) -> int:
    """Run `command` in bash after the task; its exit code (the task's result stands)."""
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=dict(env), check=False).returncode
