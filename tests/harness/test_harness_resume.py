"""A harness task killed with SIGKILL halfway and resumed: no answered request is sent
twice (the proxy's cache answers them), and the metrics equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from evalfleet.store import InvocationStore
from evalfleet.testing import run_simulator
from tests.helpers import cache_rows

LIMIT = 6
ANSWER = "The answer is \\boxed{204}."


def _config(tmp_path: Path, url: str, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""\
target: {{api_endpoint: {{url: "{url}/v1/chat/completions", model_id: sim-model}}}}
execution: {{type: local, output_dir: {name}}}
evaluation:
  tasks:
    - name: mmath.mmath_en
      params: {{limit_samples: {LIMIT}, parallelism: 1}}
"""
    )
    return path


def _evalfleet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalfleet", *args],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )  # fmt: skip


def test_sigkill_halfway_then_resume_sends_no_answered_request_twice(
    harness_env, isolated, tmp_path
):
    harness_env("nvidia-mmath")
    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    with run_simulator(default_answer=ANSWER, latency=0.8) as sim:
        reference = _evalfleet(
            "run", "--config", str(_config(tmp_path, sim.base_url, "ref")), env=env
        )
        assert reference.returncode == 0, reference.stderr[-2000:]
        expected = json.loads(next(Path("ref").glob("*/mmath.mmath_en/results.json")).read_text())
        sim.reset_stats()

        runner = subprocess.Popen(
            [sys.executable, "-m", "evalfleet", "run", "--config",
             str(_config(tmp_path, sim.base_url, "killed"))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        record = cache = None
        while time.monotonic() < deadline:
            caches = list(Path("killed").glob("*/mmath.mmath_en/cache.sqlite"))
            if caches and cache_rows(caches[0]) >= 2:
                cache = caches[0]
                record = InvocationStore().list_invocations()[0]
                break
            time.sleep(0.05)
        assert cache is not None and record is not None
        job_pid = InvocationStore().get(record.invocation_id).jobs[0].handle["pid"]
        for group in {os.getpgid(runner.pid), os.getpgid(job_pid)}:
            os.killpg(group, signal.SIGKILL)
        runner.wait(timeout=30)
        kept = cache_rows(cache)
        assert 2 <= kept < LIMIT
        time.sleep(1.5)  # the harness died with evalfleet eval: nothing more arrives
        sent_before = sim.stats()["requests"]
        time.sleep(1.5)
        assert sim.stats()["requests"] == sent_before
        assert not (cache.parent / "results.json").exists()

        resumed = _evalfleet("resume", record.invocation_id, env=env)
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        stats = sim.stats()
    # Every request answered before the kill came from the cache; each prompt reached the
    # endpoint once, but for the one in flight when the process died.
    assert stats["requests"] - sent_before == LIMIT - kept
    assert sum(count > 1 for count in stats["by_key"].values()) <= sent_before - kept
    results = json.loads((cache.parent / "results.json").read_text())
    assert results["metrics"] == expected["metrics"]
    assert results["harness"]["results"] == expected["harness"]["results"]
    assert results["counts"]["cached"] == kept
    assert InvocationStore().get(record.invocation_id).jobs[0].state == "SUCCESS"
