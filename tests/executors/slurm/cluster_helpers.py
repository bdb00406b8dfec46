"""Configs, datasets and waiting helpers for the tests that run on the real Slurm cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from evalfleet import api

PY = sys.executable


def write_dataset(directory: Path, name: str = "adds", n: int = 4) -> tuple[Path, Path]:
    """A custom task's JSONL (`What is i plus one?`) and the simulator's oracle for it."""
    directory.mkdir(parents=True, exist_ok=True)
    data, oracle = directory / f"{name}.jsonl", directory / f"{name}-oracle.jsonl"
    with data.open("w") as rows, oracle.open("w") as answers:
        for i in range(n):
            prompt = f"What is {i} plus one?"
            rows.write(json.dumps({"id": f"s{i}", "prompt": prompt, "answer": str(i + 1)}) + "\n")
            answers.write(json.dumps({"prompt": prompt, "response": f"It is {i + 1}."}) + "\n")
    return data, oracle


def slurm_config(
    tmp_path: Path,
    port: int,
    *,
    tasks: list[str] = ("adds", "more"),  # type: ignore[assignment]
    samples: int = 4,
    walltime: str = "00:05:00",
    max_walltime: str = "00:10:00",
    sim_args: str = "",
    execution: str = "",
    missing: tuple[str, ...] = (),
    params: str = "{parallelism: 2}",
    command_prefix: str = "",
) -> Path:
    """A run config: the endpoint simulator as a `generic` deployment, custom tasks. The
    job runs the planner's own wheel, installed by the script's bootstrap on the "cluster".

    `missing` names tasks whose dataset file is not created (their `evalfleet eval` fails).
    """
    data_dir = tmp_path / "data"
    oracle_lines = []
    task_lines = []
    for name in tasks:
        data, oracle = write_dataset(data_dir, name, samples)
        oracle_lines.append(oracle.read_text())
        if name in missing:
            data.unlink()
        task_lines.append(f"    - {{name: {name}, dataset: {{path: {data}}}, scorer: numeric}}")
    oracle = data_dir / "oracle.jsonl"
    oracle.write_text("".join(oracle_lines))
    config = tmp_path / "slurm.yaml"
    # Several jobs share the test cluster's one node, unless a test gives its own flags.
    shared_node = (
        "" if "sbatch_extra_flags" in execution else "  sbatch_extra_flags: {exclusive: false}\n"
    )
    config.write_text(
        f"""\
execution:
  type: slurm
  walltime: "{walltime}"
  max_walltime: "{max_walltime}"
  output_dir: {tmp_path / "results"}
  endpoint_readiness_timeout: 60
  gres: null                        # the test cluster has no GPUs (the default asks gpu:8)
{shared_node}{execution}
deployment:
  type: generic
  command: {command_prefix}{PY} -m evalfleet.testing.endpoint --port {{port}} --answers {oracle} {sim_args}
  served_model_name: sim-model
  port: {port}
evaluation:
  params: {params}
  tasks:
"""
        + "\n".join(task_lines)
        + "\n"
    )
    return config


def wait_for(
    invocation_id: str, done: Any, timeout_s: float = 90, poll_s: float = 1.0
) -> list[dict[str, str]]:
    """Poll `evalfleet status` until `done(rows)`; fails with the last rows."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = api.status([invocation_id])
        if done(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s; last status: {rows}")
        time.sleep(poll_s)


def states(rows: list[dict[str, str]]) -> list[str]:
    return [row["state"] for row in rows]


def all_in(*wanted: str):
    return lambda rows: all(row["state"] in wanted for row in rows)


def active_jobs(name_part: str) -> list[str]:
    """Jobs whose name contains `name_part` that Slurm has not finished."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%T|%j"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if name_part in line.split("|")[-1]]


def chain_jobs(invocation_id: str) -> dict[str, list[str]]:
    return api.get_invocation(invocation_id).handle["slurm_jobs"]


def server_processes(port: int) -> list[int]:
    """Processes of the simulator serving `port` (its command line names the port)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        text = b" ".join(argv).decode(errors="replace")
        if "evalfleet.testing.endpoint" in text and f"--port {port}" in text:
            found.append(int(entry.name))
    return found


def wait_gone(port: int, timeout_s: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := server_processes(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def last_invocation() -> str:
    return api.list_runs(limit=1)[0]["invocation_id"]


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def wait_no_jobs(name_part: str, timeout_s: float = 60) -> list[str]:
    """Wait until no job whose name contains `name_part` is active; returns those left."""
    deadline = time.monotonic() + timeout_s
    while (left := active_jobs(name_part)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left
