"""A disk that fills up while a job writes its results: one line, no temporary file left,
and the answers kept in the cache so that running the job again finishes it.

The disk is full for real: `evalfleet eval` runs under RLIMIT_FSIZE (no root needed), so
the kernel refuses to grow a file past the limit (EFBIG, as ENOSPC on a full disk) at the
exact write that crosses it, through the engine's own code path."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from evalfleet.contract.files import write_problem
from evalfleet.testing import run_simulator

N = 40
PADDING = "Think it through. " * 1_700  # ~30 kB a prompt: samples.jsonl > 1 MB, the cache small
LIMIT = 768 * 1024  # larger than the cache and the logs, smaller than samples.jsonl


def _prompt(i: int) -> str:
    return f"{PADDING}What is {i} plus one?"


@pytest.fixture
def job(tmp_path: Path) -> Path:
    dataset = tmp_path / "long.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "prompt": _prompt(i), "answer": str(i + 1)}) + "\n"
            for i in range(N)
        )
    )
    out = tmp_path / "job"
    out.mkdir()
    return out / "job.json", dataset  # type: ignore[return-value]


def _write_job(path: Path, dataset: Path, base_url: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "invocation_id": "abcd0123",
                "job_id": "abcd0123.0",
                "task": "long",
                "endpoint": {"url": f"{base_url}/v1/chat/completions", "model_id": "sim-model"},
                "params": {"parallelism": 8, "max_retries": 2},
                "output_dir": str(path.parent),
                "dataset": {"path": str(dataset)},
                "scorer": {"name": "numeric"},
            }
        )
    )
    return path


def _limit_file_size() -> None:
    # Without SIG_IGN the process would be killed by SIGXFSZ instead of seeing EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _eval(job: Path, limited: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalfleet", "eval", "--job", str(job), "-q"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
        preexec_fn=_limit_file_size if limited else None,
    )  # fmt: skip


def test_samples_jsonl_on_a_full_disk_is_one_line_and_a_rerun_finishes(job) -> None:
    job_file, dataset = job
    answers = {_prompt(i): f"It is {i + 1}." for i in range(N)}
    with run_simulator(answers=answers) as sim:
        _write_job(job_file, dataset, sim.base_url)
        full = _eval(job_file, limited=True)
        out = job_file.parent
        assert full.returncode == 1, full.stderr
        assert "Traceback" not in full.stderr
        (line,) = full.stderr.strip().splitlines()
        assert line.startswith("error: cannot write ") and str(out / "samples.jsonl") in line
        assert "file too large" in line and "run the job again" in line
        assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
        assert not (out / "samples.jsonl").exists() and not (out / "results.json").exists()
        assert "cannot write" in (out / "logs" / "failure.txt").read_text()
        assert sim.stats()["requests"] == N

        again = _eval(job_file, limited=False)
        assert again.returncode == 0, again.stderr
        assert sim.stats()["requests"] == N, "every answer came from the cache"
        results = json.loads((out / "results.json").read_text())
        assert results["metrics"]["accuracy"]["value"] == 1.0
        assert len((out / "samples.jsonl").read_text().splitlines()) == N


def test_a_full_disk_is_named_in_the_os_words() -> None:
    """ENOSPC itself, from the kernel: /dev/full refuses every write with it."""
    with pytest.raises(OSError) as info, open("/dev/full", "w") as full:
        full.write("x")
        full.flush()
    assert write_problem("/o/samples.jsonl", info.value) == (
        "cannot write /o/samples.jsonl: no space left on device"
    )
