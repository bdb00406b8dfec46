"""An arithmetic custom task whose oracle answers are right for 3 samples in 4."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

N_SAMPLES = 120


def prompt(i: int) -> str:
    return f"What is {i} plus one?"


def oracle(n: int = N_SAMPLES) -> dict[str, str]:
    return {prompt(i): (f"It is {i + 1}." if i % 4 else "I am not sure.") for i in range(n)}


def write_dataset(directory: Path) -> Path:
    path = directory / "adds.jsonl"
    with path.open("w") as handle:
        for i in range(N_SAMPLES):
            handle.write(
                json.dumps({"id": f"s{i}", "prompt": prompt(i), "answer": str(i + 1)}) + "\n"
            )
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path)


@pytest.fixture
def make_job(tmp_path: Path, dataset: Path):
    def make(base_url: str, name: str = "job", **params) -> Path:
        out = tmp_path / name
        out.mkdir(exist_ok=True)
        spec = {
            "invocation_id": "abcd0123",
            "job_id": "abcd0123.0",
            "task": "adds",
            "endpoint": {
                "url": f"{base_url}/v1/chat/completions",
                "model_id": "sim-model",
                "type": "chat",
            },
            "params": {"parallelism": 8, "max_retries": 6, **params},
            "output_dir": str(out),
            "dataset": {"path": str(dataset)},
            "scorer": {"name": "numeric"},
        }
        job = out / "job.json"
        job.write_text(json.dumps(spec))
        return job

    return make


def run_eval(job: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalfleet", "eval", "--job", str(job), "-q", *extra],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )  # fmt: skip


def results_of(job: Path) -> dict:
    return json.loads((job.parent / "results.json").read_text())


def comparable(results: dict) -> dict:
    """What must not depend on faults, kills or the cache: scores and counts."""
    return {"metrics": results["metrics"], "counts": results["counts"]}
