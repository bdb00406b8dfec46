"""The batch script's bootstrap: the planner's own wheel, installed once in a virtualenv.

The script runs with bash on this machine (no Slurm needed) against the real wheel, with
a fresh evalfleet cache dir: the first run makes the virtualenv with `python3 -m venv`
(the dependencies from pip's cache or index), the second reuses it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalfleet.executors import wheel as wheel_module
from evalfleet.executors.slurm.executor import SlurmExecutor
from evalfleet.executors.slurm.render import render_scripts
from evalfleet.executors.wheel import own_wheel
from tests.conftest import REPO

from .conftest import FAKE_WHEEL
from .helpers import override

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "flock", "sha256sum", "python3")),
    reason="needs bash, flock, sha256sum and python3",
)

NO_DEPLOYMENT = """
execution:
  type: slurm
target:
  api_endpoint:
    url: http://127.0.0.1:9/v1
    model_id: some-model
evaluation:
  tasks:
    - name: gsm8k
"""


def test_the_dry_run_says_where_the_wheel_goes(plan_config) -> None:
    inv = plan_config(NO_DEPLOYMENT)
    plan = SlurmExecutor().plan(inv)
    assert plan["evalfleet_wheel"]["copied_to"] == f"/lustre/evals/0123abcd/{FAKE_WHEEL.filename}"
    assert plan["evalfleet_wheel"]["version"] == FAKE_WHEEL.version
    text = "\n".join(SlurmExecutor.render_plan(plan))
    assert (
        f"is copied to /lustre/evals/0123abcd/{FAKE_WHEEL.filename} and installed once in "
        "${EVALFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/evalfleet}/venvs/"
        "0.1.0+sha0123456789ab-py<python3 version>"
    ) in text
    (script,) = plan["scripts"]
    assert f'echo "{FAKE_WHEEL.sha256}  $evalfleet_wheel" | sha256sum' in script["text"]


def test_a_named_evalfleet_command_ships_nothing(plan_config) -> None:
    inv = plan_config(NO_DEPLOYMENT, override("execution.evalfleet_command", "/opt/ef/bin/ef"))
    plan = SlurmExecutor().plan(inv)
    assert plan["evalfleet_wheel"] is None
    (script,) = plan["scripts"]
    assert "evalfleet_bootstrap" not in script["text"] and "/opt/ef/bin/ef" in script["text"]


def _node_environment() -> dict[str, str]:
    """The "cluster's" environment: its python3 is the system's, without the test
    interpreter's virtualenv (CI runs the tests with it activated)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    venv_bin = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join(
        d for d in env["PATH"].split(os.pathsep) if not d or Path(d) != venv_bin
    )
    return env


def _run(script: Path, cache: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = _node_environment()
    env["EVALFLEET_CACHE_DIR"] = str(cache)
    start = time.monotonic()
    result = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    return result, time.monotonic() - start


def test_the_script_installs_and_runs_the_planners_wheel(
    plan_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wheel_module, "own_wheel", own_wheel)  # the real wheel
    built = own_wheel()
    out = tmp_path / "results"
    inv = plan_config(NO_DEPLOYMENT, output_dir=str(out))
    (script,) = render_scripts(inv)
    out.mkdir(parents=True)
    path = out / inv.invocation_id / script.name
    path.parent.mkdir(parents=True)
    path.write_text(script.text)
    (path.parent / built.filename).write_bytes(built.data)  # what the executor copies
    check = subprocess.run(["python3", "-c", "import evalfleet"], capture_output=True,
                           env=_node_environment(), cwd=tmp_path)  # fmt: skip
    assert check.returncode != 0  # the node's python3 has no evalfleet of its own

    cache = tmp_path / "cluster-cache"
    first, cold = _run(path, cache)
    node_python = subprocess.run(
        ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        env=_node_environment(), capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    venv = cache / "venvs" / f"{built.version}-py{node_python}"
    ran = re.findall(r"evalfleet: running evalfleet (\S+) from (\S+)", first.stderr)
    assert ran == [
        (built.version, str(venv / f"lib/python{node_python}/site-packages/evalfleet/__init__.py"))
    ], first.stderr
    assert "installing" in first.stderr and not Path(ran[0][1]).is_relative_to(REPO)
    job_logs = out / inv.invocation_id / "gsm8k" / "logs"
    # `evalfleet eval` ran (and failed: no data, no endpoint here) and said why.
    assert (job_logs / "exit_code").read_text().strip() == "1"
    assert "lm-evaluation-harness.gsm8k" in (job_logs / "failure.txt").read_text()

    (job_logs / "exit_code").unlink()
    second, cached = _run(path, cache)
    assert (
        "installing" not in second.stderr and f"running evalfleet {built.version}" in second.stderr
    )
    print(f"bootstrap: cold {cold:.1f}s, cached {cached:.1f}s (whole script, one failing task)")
    assert cached < cold

    # A damaged wheel is refused before anything is installed.
    (path.parent / built.filename).write_bytes(built.data[:-1] + b"x")
    shutil.rmtree(cache)
    third, _ = _run(path, cache)
    assert third.returncode != 0 and "cannot install evalfleet" in third.stderr
    assert not (venv / "bin").exists()
