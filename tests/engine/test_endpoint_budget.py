"""One endpoint, one budget: the tasks of an invocation that run in one process share the
endpoint's in-flight limit and its 429 back-off, follow each other without an idle gap,
and stop together once the endpoint has stopped answering. A job directory is run by one
process at a time."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalfleet.engine.budget import Budgets, EndpointHealth, shared_budgets
from evalfleet.engine.client import EndpointClient, RequestFailed, RetryPolicy
from evalfleet.jobs import JobRun, evaluate_jobs
from evalfleet.testing import run_simulator

from .conftest import oracle, results_of

BODY = {"model": "sim-model", "messages": [{"role": "user", "content": "What is 1 plus one?"}]}


def _bounded(coroutine, seconds: float = 60):
    return asyncio.run(asyncio.wait_for(coroutine, seconds))


async def _send_many(client: EndpointClient, count: int) -> None:
    await asyncio.gather(*(client.send(BODY) for _ in range(count)))


@pytest.mark.parametrize("shared", [True, False])
def test_clients_of_one_endpoint_share_its_in_flight_limit(shared):
    with run_simulator(answers=oracle(), latency=0.1) as sim:
        url = f"{sim.base_url}/v1/chat/completions"

        async def main() -> None:
            async with (
                EndpointClient(url, api_key=None, parallelism=6, timeout_s=30) as first,
                EndpointClient(url, api_key=None, parallelism=6, timeout_s=30) as second,
            ):
                assert (first.limit is second.limit) is shared
                await asyncio.gather(_send_many(first, 24), _send_many(second, 24))

        if shared:
            with shared_budgets():
                _bounded(main())
        else:
            _bounded(main())
        peak = sim.stats()["max_in_flight"]
    assert peak == (6 if shared else 12)


def test_a_budget_is_per_server_and_as_large_as_its_largest_client():
    budgets = Budgets()
    chat = budgets.for_url("http://Host:8000/v1/chat/completions", 4)
    assert budgets.for_url("http://host:8000/v1/completions?x=1", 16) is chat
    assert chat.limit.maximum == 16 and chat.limit.limit == 16
    assert budgets.for_url("http://host:8001/v1/chat/completions", 4) is not chat


def test_a_429_halves_the_budget_of_every_client_of_the_endpoint():
    with run_simulator(answers=oracle(), retry_after=0.01) as sim:
        url = f"{sim.base_url}/v1/chat/completions"

        async def main() -> tuple[float, float]:
            async with (
                EndpointClient(url, api_key=None, parallelism=16, timeout_s=30,
                               retry=RetryPolicy(max_retries=3, base_s=0.01)) as first,
                EndpointClient(url, api_key=None, parallelism=16, timeout_s=30) as second,
            ):  # fmt: skip
                sim.control(fault_rate=1.0, faults="429")
                with pytest.raises(RequestFailed, match="HTTP 429"):
                    await first.send(BODY)
                sim.control(fault_rate=0.0)
                return second.limit.limit, first.stats.throttled

        with shared_budgets():
            limit, throttled = _bounded(main())
    # Three 429s retried by the first task, one cut per burst: the second's limit is halved.
    assert throttled == 3
    assert limit == 8


def test_an_endpoint_that_stopped_answering_fails_every_client_fast():
    """A 5xx storm (a hung server or an HTML login page trips it the same way): once the
    endpoint has answered nothing for the window, the requests stop, every client's at once,
    instead of each waiting out its retries."""
    with run_simulator(answers=oracle()) as sim:
        url = f"{sim.base_url}/v1/chat/completions"
        sim.control(fault_rate=1.0, faults="500")
        budgets = Budgets(health=lambda: EndpointHealth(silent_for_s=0.3, failed_attempts=5))

        async def main() -> tuple[str, str, int]:
            retry = RetryPolicy(max_retries=1000, base_s=0.02, cap_s=0.05)
            async with (
                EndpointClient(url, api_key=None, parallelism=4, timeout_s=30, retry=retry) as a,
                EndpointClient(url, api_key=None, parallelism=4, timeout_s=30, retry=retry) as b,
            ):
                with pytest.raises(RequestFailed) as first:
                    await a.send(BODY)
                seen = sim.stats()["requests"]
                with pytest.raises(RequestFailed) as second:
                    await b.send(BODY)
                return first.value.reason, second.value.kind, sim.stats()["requests"] - seen

        with shared_budgets(budgets):
            reason, kind, sent_after = _bounded(main(), 30)
    assert reason.startswith("no answer for ") and "HTTP 500" in reason
    assert kind == "silent" and sent_after == 0


def test_a_hung_server_ends_the_requests_after_the_window_not_after_every_retry():
    with run_simulator(answers=oracle(), hang_seconds=3600) as sim:
        url = f"{sim.base_url}/v1/chat/completions"
        sim.control(fault_rate=1.0, faults="timeout")
        budgets = Budgets(health=lambda: EndpointHealth(silent_for_s=0.5, failed_attempts=4))

        async def main() -> list[BaseException | object]:
            retry = RetryPolicy(max_retries=1000, base_s=0.01, cap_s=0.02)
            async with EndpointClient(url, api_key=None, parallelism=4, timeout_s=0.2,
                                      retry=retry) as client:  # fmt: skip
                return await asyncio.gather(
                    *(client.send(BODY) for _ in range(8)), return_exceptions=True
                )

        with shared_budgets(budgets):
            outcomes = _bounded(main(), 30)
    assert all(isinstance(o, RequestFailed) and o.kind == "silent" for o in outcomes), outcomes
    assert "timed out after 0.2 s" in outcomes[0].reason


def test_the_health_window_needs_both_time_and_failed_attempts():
    now = [0.0]
    health = EndpointHealth(silent_for_s=60, failed_attempts=3, get_time=lambda: now[0])
    now[0] = 100.0
    assert health.attempt_failed("x") is None and health.attempt_failed("x") is None
    health.answered()  # an answer resets both
    now[0] = 200.0
    assert health.attempt_failed("a") is None
    assert health.attempt_failed("b") is None
    assert (
        health.attempt_failed("c")
        == "no answer for 100 s, the last 3 attempts all failed; the last: c"
    )
    fresh = EndpointHealth(silent_for_s=60, failed_attempts=3, get_time=lambda: now[0])
    for _ in range(50):  # many failures within the window: a burst, not a dead endpoint
        assert fresh.attempt_failed("burst") is None


def _job(tmp_path: Path, name: str, base_url: str, count: int, **params) -> str:
    out = tmp_path / name
    out.mkdir()
    data = out / "data.jsonl"
    with data.open("w") as rows:
        for i in range(count):
            rows.write(json.dumps({"id": f"s{i}", "prompt": f"What is {i} plus one?",
                                   "answer": str(i + 1)}) + "\n")  # fmt: skip
    spec = {
        "invocation_id": "abcd0123", "job_id": f"abcd0123.{name}", "task": name,
        "endpoint": {"url": f"{base_url}/v1/chat/completions", "model_id": "sim-model"},
        "params": {"parallelism": 8, **params}, "output_dir": str(out),
        "dataset": {"path": str(data)}, "scorer": {"name": "numeric"},
    }  # fmt: skip
    (out / "job.json").write_text(json.dumps(spec))
    return str(out / "job.json")


def _run(jobs: list[JobRun], parallel: bool) -> list[str]:
    events: list[str] = []
    evaluate_jobs(
        jobs,
        parallel=parallel,
        started=lambda job: events.append(f"start {Path(job.job_file).parent.name}"),
        ended=lambda job: events.append(f"end {Path(job.job_file).parent.name}={job.code}"),
    )
    return events


def test_tasks_in_sequence_follow_each_other_without_an_idle_gap(tmp_path):
    with run_simulator(answers=oracle(), latency=0.3) as sim:
        jobs = [JobRun(_job(tmp_path, name, sim.base_url, 20)) for name in ("one", "two")]
        events = _run(jobs, parallel=False)
        peak = sim.stats()["max_in_flight"]
    assert events[0] == "start one" and sorted(events[1:]) == [
        "end one=0",
        "end two=0",
        "start two",
    ]
    assert events.index("start two") < events.index("end one=0")
    first, second = (job.progress for job in jobs)
    # The second task's first request went out before the first task's last answer came.
    assert second.fetch_started < first.fetch_ended
    assert peak == 8  # never more than one task's parallelism at the endpoint
    for job in jobs:
        assert results_of(Path(job.job_file))["counts"]["scored_samples"] == 20


def test_tasks_in_parallel_share_the_endpoints_parallelism(tmp_path):
    with run_simulator(answers=oracle(), latency=0.1) as sim:
        jobs = [JobRun(_job(tmp_path, f"t{i}", sim.base_url, 24)) for i in range(3)]
        thresholds = gc.get_threshold()
        events = _run(jobs, parallel=True)
        assert gc.get_threshold() == thresholds  # each job made collections rarer, then not
        peak = sim.stats()["max_in_flight"]
    assert [e for e in events if e.startswith("start")] == ["start t0", "start t1", "start t2"]
    assert sorted(e for e in events if e.startswith("end")) == ["end t0=0", "end t1=0", "end t2=0"]
    assert peak == 8


def test_a_failing_task_does_not_stop_the_others_and_each_has_its_environment(tmp_path, capfd):
    with run_simulator(answers=oracle(), require_api_key="right-key") as sim:
        good = JobRun(_job(tmp_path, "good", sim.base_url, 5), {"TASK_KEY": "right-key"})
        bad = JobRun(_job(tmp_path, "bad", sim.base_url, 5), {"TASK_KEY": "wrong-key"})
        for job in (good, bad):
            spec = json.loads(Path(job.job_file).read_text())
            spec["endpoint"]["api_key_name"] = "TASK_KEY"
            Path(job.job_file).write_text(json.dumps(spec))
        events = _run([bad, good], parallel=False)
    assert events == ["start bad", "end bad=1", "start good", "end good=0"]
    err = capfd.readouterr().err
    assert "error: the endpoint refused the requests: HTTP 401" in err
    assert "Traceback" not in err
    assert "HTTP 401" in (Path(bad.job_file).parent / "logs" / "failure.txt").read_text()


def test_a_job_directory_runs_in_one_process_at_a_time(tmp_path):
    with run_simulator(answers=oracle(), latency=0.5) as sim:
        job = _job(tmp_path, "once", sim.base_url, 40, parallelism=2)
        first = subprocess.Popen(
            [sys.executable, "-m", "evalfleet", "eval", "--job", job, "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while sim.stats()["requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "evalfleet", "eval", "--job", job, "-q"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        first.kill()
        first.communicate(timeout=30)
    assert second.returncode == 1
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("error: job abcd0123.once is already running (pid ")
    assert f"(pid {first.pid})" in line
