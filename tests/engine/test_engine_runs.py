"""`evalfleet eval` against the endpoint simulator: scores, files, cache, faults, resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from evalfleet.testing import run_simulator
from tests.engine.conftest import N_SAMPLES, comparable, oracle, prompt, results_of, run_eval
from tests.helpers import cache_rows


def test_scores_files_and_a_second_run_sends_nothing(make_job):
    with run_simulator(answers=oracle(), latency=0.01) as sim:
        job = make_job(sim.base_url)
        first = run_eval(job)
        assert first.returncode == 0, first.stderr
        results = results_of(job)
        accuracy = results["metrics"]["accuracy"]
        assert accuracy["value"] == 0.75 and accuracy["n"] == N_SAMPLES
        assert accuracy["ci95"][0] < 0.75 < accuracy["ci95"][1]
        assert accuracy["stderr"] > 0
        assert results["counts"]["errors"] == 0 and results["counts"]["responses"] == N_SAMPLES
        assert results["usage"]["total_tokens"] > 0
        assert results["latency_s"]["p50"] >= 0.01
        lines = (job.parent / "samples.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert len(records) == N_SAMPLES
        assert {r["score"] for r in records} == {0.0, 1.0}
        assert records[1] == {
            **records[1],
            "id": "s1",
            "extracted": "2",
            "score": 1.0,
            "error": None,
        }
        assert (job.parent / "logs" / "eval.log").is_file()
        assert cache_rows(job.parent / "cache.sqlite") == N_SAMPLES
        scored_while_fetching = (job.parent / "samples.jsonl").read_bytes()
        assert sim.stats()["requests"] == N_SAMPLES

        again = run_eval(job)
        assert again.returncode == 0
        assert sim.stats()["requests"] == N_SAMPLES, "a finished job must not send anything again"
        assert comparable(results_of(job)) == comparable(results)

        rescored = run_eval(job, "--rescore")
        assert rescored.returncode == 0
        assert sim.stats()["requests"] == N_SAMPLES
        assert comparable(results_of(job)) == comparable(results)
        # Scored all at once from the cache, byte for byte what scoring on arrival wrote.
        assert (job.parent / "samples.jsonl").read_bytes() == scored_while_fetching


def test_ten_percent_429_and_500_change_nothing(make_job):
    with run_simulator(answers=oracle(), latency=0.005) as clean:
        job = make_job(clean.base_url, "clean")
        assert run_eval(job).returncode == 0
        expected = comparable(results_of(job))
    with run_simulator(
        answers=oracle(), latency=0.005, fault_rate=0.1, faults="429,500", retry_after=0.05, seed=7
    ) as faulty:
        job = make_job(faulty.base_url, "faulty")
        result = run_eval(job)
        assert result.returncode == 0, result.stderr
        stats = faulty.stats()
        assert stats["faults"].get("429", 0) > 0 and stats["faults"].get("500", 0) > 0
        results = results_of(job)
        assert comparable(results) == expected
        assert results["requests"]["retries"] == stats["requests"] - N_SAMPLES


def test_sigkill_halfway_then_resume_sends_only_what_is_missing(make_job, tmp_path):
    with run_simulator(answers=oracle(), latency=0.05) as sim:
        reference = make_job(sim.base_url, "reference", parallelism=4)
        assert run_eval(reference).returncode == 0
        expected = comparable(results_of(reference))
        sim.reset_stats()

        job = make_job(sim.base_url, "killed", parallelism=4)
        process = subprocess.Popen(
            [sys.executable, "-m", "evalfleet", "eval", "--job", str(job), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while sim.stats()["completed"] < N_SAMPLES // 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        sent_before = sim.stats()["requests"]
        kept = cache_rows(job.parent / "cache.sqlite")
        assert 0 < kept < N_SAMPLES
        assert not (job.parent / "results.json").exists()

        sim.reset_stats()
        resumed = run_eval(job)
        assert resumed.returncode == 0, resumed.stderr
        stats = sim.stats()
        assert stats["requests"] == N_SAMPLES - kept, "only unanswered requests may be sent"
        assert max(stats["by_key"].values()) == 1
        assert sent_before + stats["requests"] - N_SAMPLES <= 4  # at most the in-flight ones twice
        assert comparable(results_of(job)) == expected


def test_endpoint_going_down_stops_with_a_clear_error_and_keeps_answers(make_job):
    with run_simulator(answers=oracle(), latency=0.05) as sim:
        job = make_job(sim.base_url, parallelism=4, max_retries=2)
        process = subprocess.Popen(
            [sys.executable, "-m", "evalfleet", "eval", "--job", str(job), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while sim.stats()["completed"] < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        completed = sim.stats()["completed"]
        sim.stop()
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: endpoint {sim.base_url}/v1/chat/completions is unreachable:")
    assert "connection error" in line and "kept in the cache" in line
    assert cache_rows(job.parent / "cache.sqlite") >= completed - 4
    assert "Traceback" not in err


def test_malformed_and_empty_answers_are_sample_errors(make_job):
    # One request at a time, so that the seeded faults fall on the same samples every run.
    with run_simulator(answers=oracle(), fault_rate=0.3, faults="malformed,empty", seed=1) as sim:
        job = make_job(sim.base_url, max_retries=0, limit_samples=20, parallelism=1)
        result = run_eval(job)
    assert result.returncode == 3, result.stderr
    results = results_of(job)
    records = [json.loads(line) for line in (job.parent / "samples.jsonl").read_text().splitlines()]
    failed = [r for r in records if r["error"]]
    assert 0 < len(failed) == results["counts"]["errors"] < 20
    assert all(r["score"] is None and r["error"].startswith("malformed response") for r in failed)
    assert cache_rows(job.parent / "cache.sqlite") == 20 - len(failed), "errors are never cached"


def test_an_endpoint_that_answers_only_garbage_ends_the_run_early(make_job):
    """A 200 that is never an answer (a login page, `{"error": …}`) is a broken endpoint,
    not 200 sample errors: the run stops after a few requests, in one line."""
    with run_simulator(fault_rate=1.0, faults="malformed,empty", seed=1) as sim:
        job = make_job(sim.base_url, max_retries=1, limit_samples=200, parallelism=2)
        result = run_eval(job)
        sent = sim.stats()["requests"]
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: endpoint {sim.base_url}/v1/chat/completions gives no usable")
    assert "malformed response" in line and "Traceback" not in result.stderr
    # Three requests in a row failed (two attempts each), plus what was in flight.
    assert sent <= 3 * 2 + 2 * 2, sent
    assert "gives no usable answers" in (job.parent / "logs" / "failure.txt").read_text()


def test_a_reply_with_no_text_is_a_sample_error_not_a_wrong_answer(make_job):
    # content: null with finish_reason stop (a reasoning parser kept it all): no answer to
    # score, said in the sample's error; it was scored as a wrong answer with errors 0.
    with run_simulator(fault_rate=1.0, faults="null_content", seed=1) as sim:
        job = make_job(sim.base_url, max_retries=1, limit_samples=6)
        result = run_eval(job)
        assert sim.stats()["requests"] == 6  # not retried: the same request gets the same reply
    assert result.returncode == 3, result.stderr
    results = results_of(job)
    assert results["counts"]["errors"] == 6 and results["metrics"] == {}
    records = [json.loads(line) for line in (job.parent / "samples.jsonl").read_text().splitlines()]
    assert all(r["score"] is None for r in records)
    assert all(
        r["error"].startswith("the reply has no text: message.content is null and "
                              "reasoning_content holds all 30 characters (finish_reason stop)")
        for r in records
    )  # fmt: skip


def test_wrong_api_key_stops_at_once_with_the_endpoints_message(make_job, monkeypatch):
    with run_simulator(require_api_key="right-key") as sim:
        job = make_job(sim.base_url)
        spec = json.loads(job.read_text())
        spec["endpoint"]["api_key_name"] = "SIM_KEY_FOR_TEST"
        job.write_text(json.dumps(spec))
        monkeypatch.setenv("SIM_KEY_FOR_TEST", "wrong-key")
        result = run_eval(job)
        assert result.returncode == 1
        assert "HTTP 401" in result.stderr and "wrong-key" not in result.stderr
        assert sim.stats()["requests"] < N_SAMPLES
        monkeypatch.setenv("SIM_KEY_FOR_TEST", "right-key")
        assert run_eval(job).returncode == 0


def test_unset_api_key_env_is_named(make_job):
    job = make_job("http://127.0.0.1:9")
    spec = json.loads(job.read_text())
    spec["endpoint"]["api_key_name"] = "EVALFLEET_SURELY_UNSET_KEY"
    job.write_text(json.dumps(spec))
    result = run_eval(job)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: endpoint.api_key_name: the env var EVALFLEET_SURELY_UNSET_KEY is not set"
    )


def test_bad_job_field_is_one_line(make_job):
    job = make_job("http://127.0.0.1:9", parallelism=0)
    result = run_eval(job)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {job}: params.parallelism: input should be greater than 0")


def test_repeats_reasoning_and_system_prompt(make_job):
    with run_simulator(answers=oracle(), reasoning=True) as sim:
        job = make_job(sim.base_url, n_samples=3, limit_samples=8, seed=5)
        spec = json.loads(job.read_text())
        spec["interceptors"] = {
            "reasoning": {"strip": True},
            "system_prompt": {"mode": "replace", "text": "Answer briefly."},
            "log_samples": 2,
        }
        job.write_text(json.dumps(spec))
        assert run_eval(job).returncode == 0
        assert sim.stats()["requests"] == 24
    results = results_of(job)
    assert results["repeats"]["n"] == 3 and results["repeats"]["spread"] == 0.0
    assert results["metrics"]["accuracy"]["n"] == 8
    assert results["counts"]["unfinished_reasoning"] == 0
    logged = [
        json.loads(line)
        for line in (job.parent / "logs" / "requests.jsonl").read_text().splitlines()
    ]
    assert len(logged) == 2
    assert logged[0]["request"]["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert {r["request"]["seed"] for r in logged} <= {5, 6, 7}
    records = [json.loads(line) for line in (job.parent / "samples.jsonl").read_text().splitlines()]
    second = next(r for r in records if r["id"] == "s1")
    assert second["response"] == "It is 2." and second["reasoning"] == "simulated reasoning"
    assert [(r["id"], r["repeat"]) for r in records[:3]] == [("s0", 0), ("s0", 1), ("s0", 2)]


def test_prompt_helper_matches_dataset():
    assert prompt(3) in oracle()


def test_request_timeout_is_enforced(make_job):
    with run_simulator(fault_rate=1.0, faults="timeout", hang_seconds=30) as sim:
        job = make_job(sim.base_url, request_timeout=0.3, max_retries=1, limit_samples=3)
        started = time.monotonic()
        result = run_eval(job)
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "timed out after 0.3 s" in result.stderr
    assert elapsed < 15
