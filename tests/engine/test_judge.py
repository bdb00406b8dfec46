"""The judge step (engine/judge.py) end to end: `evalfleet eval` against two endpoint
simulators, one the evaluated model and one the LLM judge, on simple-evals' math tasks.

Judge replies are cached like answers: a second run and `--rescore` send nothing, a run
killed during the judge step resumes by sending only the judge requests never answered,
and judge calls are counted apart from the model's. A judge task without a judge stops at
planning, naming `config.params.extra.judge.url`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalfleet.contract import EXIT_SAMPLE_ERRORS
from evalfleet.datasets.sources import SOURCES
from evalfleet.tasks.registry import create_task
from evalfleet.tasks.simple_evals_math import EQUALITY_TEMPLATE
from evalfleet.testing import run_simulator
from tests import datafixtures as fx
from tests.datafixtures import data_mirror  # noqa: F401

MATH = "simple_evals.math_test_500"


def write_job(directory: Path, base_url: str, task: str, **params) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = {
        "invocation_id": "feed0001",
        "job_id": "feed0001.0",
        "task": task,
        "endpoint": {
            "url": f"{base_url}/v1/chat/completions",
            "model_id": "sim-model",
            "type": "chat",
        },
        "params": {"parallelism": 4, "max_retries": 1, **params},
        "output_dir": str(directory),
    }
    job = directory / "job.json"
    job.write_text(json.dumps(spec))
    return job


def run_job(cli, job: Path, *extra: str) -> dict:
    result = cli("eval", "--job", str(job), "-q", *extra)
    assert result.code == 0, result.err
    return json.loads((job.parent / "results.json").read_text())


EQUIVALENT = {  # an equal form of each fixture gold answer, which only a judge accepts
    "\\frac{14}{3}": "14/3",
    "3\\sqrt{2}": "\\sqrt{18}",
    "\\left( 3, \\frac{\\pi}{2} \\right)": "(3, \\pi/2)",
}


@pytest.fixture
def fixtures(data_mirror, monkeypatch):  # noqa: F811
    fx.pin_fixture_hashes(monkeypatch)
    return data_mirror


def _prompts(task: str) -> list[str]:
    return [s.messages[-1]["content"] for s in create_task(task).samples(None)]


def _row(rows: list[dict], key: str, prompt: str) -> dict:
    (row,) = [r for r in rows if r[key] in prompt]
    return row


def _judge_asks(gold: str, extracted: str) -> str:
    return EQUALITY_TEMPLATE % {"expression1": gold, "expression2": extracted}


def _math_answers() -> tuple[dict[str, str], dict[str, str]]:
    """Model: the first problem in an equal form (the judge says Yes), the second wrong
    (the judge says No), the third without an Answer line (no judge asked)."""
    model, judge = {}, {}
    for prompt in _prompts(MATH):
        row = _row(fx.MATH_500, "problem", prompt)
        gold = row["answer"]
        if row is fx.MATH_500[0]:
            model[prompt] = f"Step by step.\nAnswer: {EQUIVALENT[gold]}"
            judge[_judge_asks(gold, EQUIVALENT[gold])] = "Yes"
        elif row is fx.MATH_500[1]:
            model[prompt] = "Hmm.\nAnswer: 7"
            judge[_judge_asks(gold, "7")] = "No"
        else:
            model[prompt] = "I cannot tell."
    return model, judge


def _judge_params(sim) -> dict:
    return {"judge": {"url": f"{sim.base_url}/v1", "model_id": "sim-model"}}


def test_judged_scores_counts_second_run_and_rescore(fixtures, cli, tmp_path):
    model_answers, judge_answers = _math_answers()
    with (
        run_simulator(answers=model_answers) as model,
        run_simulator(answers=judge_answers) as judge,
    ):
        job = write_job(tmp_path / "math", model.base_url, MATH, **_judge_params(judge))
        results = run_job(cli, job)
        assert model.stats()["requests"] == 3
        assert judge.stats()["requests"] == 2
        assert results["metrics"]["score"]["value"] == pytest.approx(1 / 3)
        assert results["metrics"]["score"]["n"] == 3
        counts = results["counts"]
        assert (counts["judge_requests"], counts["judge_cached"], counts["judge_errors"]) == (
            2,
            0,
            0,
        )
        assert counts["errors"] == 0
        assert results["judge"]["requests"]["requests"] == 2
        assert results["judge"]["model_id"] == "sim-model"
        lines = [json.loads(x) for x in (job.parent / "samples.jsonl").read_text().splitlines()]
        assert sorted(line.get("judge", "-") for line in lines) == ["-", "No", "Yes"]
        assert sorted(line["extracted"] for line in lines) == ["", "14/3", "7"]

        model.reset_stats()
        judge.reset_stats()
        again = run_job(cli, job)  # everything from the cache
        assert model.stats()["requests"] == judge.stats()["requests"] == 0
        assert again["metrics"] == results["metrics"]
        assert again["counts"]["judge_cached"] == 2
    rescored = run_job(cli, job, "--rescore")  # both endpoints gone: the cache alone
    assert rescored["metrics"] == results["metrics"]
    assert rescored["counts"]["judge_requests"] == 2


def test_judge_failures_are_sample_errors_counted_apart(fixtures, cli, tmp_path):
    model_answers, _ = _math_answers()
    with (
        run_simulator(answers=model_answers) as model,
        run_simulator(fault_rate=1.0, faults="500") as judge,
    ):
        job = write_job(tmp_path / "math", model.base_url, MATH, **_judge_params(judge))
        job_spec = json.loads(job.read_text())
        job_spec["params"]["judge"]["max_retries"] = 1
        job.write_text(json.dumps(job_spec))
        result = cli("eval", "--job", str(job), "-q")
    assert result.code == EXIT_SAMPLE_ERRORS, result.err
    results = json.loads((job.parent / "results.json").read_text())
    assert results["counts"]["judge_errors"] == 2
    assert results["counts"]["errors"] == 2
    assert results["errors_by_reason"] == {"judge": 2}
    assert results["metrics"]["score"]["n"] == 1  # the one answer that needed no judge


def _many_rows(n: int) -> list[dict]:
    return [
        {"problem": f"What is {i} + 1?", "solution": "", "answer": str(i + 1),
         "subject": "Prealgebra", "level": 1, "unique_id": f"test/gen/{i}.json"}
        for i in range(n)
    ]  # fmt: skip


def _judge_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM responses WHERE key LIKE 'judge:%'").fetchone()[0]


def test_killed_during_the_judge_step_resumes_with_no_repeated_request(fixtures, cli, tmp_path):
    n = 40
    rows = _many_rows(n)
    fixtures.put(SOURCES["math_500-test"], "".join(json.dumps(r) + "\n" for r in rows).encode())
    model_answers, judge_answers = {}, {}
    for prompt in _prompts(MATH):
        row = _row(rows, "problem", prompt)
        value = f"{row['answer']}.0"  # an equal form: the judge decides
        model_answers[prompt] = f"Answer: {value}"
        judge_answers[_judge_asks(row["answer"], value)] = "Yes"
    with (
        run_simulator(answers=model_answers) as model,
        run_simulator(answers=judge_answers, latency=0.1) as judge,
    ):
        job = write_job(tmp_path / "math", model.base_url, MATH, **_judge_params(judge))
        spec = json.loads(job.read_text())
        spec["params"]["parallelism"] = 2
        job.write_text(json.dumps(spec))
        process = subprocess.Popen(
            [sys.executable, "-m", "evalfleet", "eval", "--job", str(job), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while judge.stats()["completed"] < n // 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert model.stats()["requests"] == n
        kept = _judge_rows(job.parent / "cache.sqlite")
        assert 0 < kept < n
        assert not (job.parent / "results.json").exists()

        model.reset_stats()
        judge.reset_stats()
        results = run_job(cli, job)
        assert model.stats()["requests"] == 0
        stats = judge.stats()
        assert stats["requests"] == n - kept, "only the judge requests never answered"
        assert max(stats["by_key"].values()) == 1
    assert results["metrics"]["score"]["value"] == 1.0
    assert results["counts"]["judge_requests"] == n
    assert results["counts"]["judge_cached"] == kept


def test_aime_2025_sympy_first_repeats_and_the_judges_key(fixtures, cli, tmp_path, monkeypatch):
    """AIME_2025: 10 repeats; answers sympy accepts never reach the judge; the judge's key
    comes from the env var the task's default names (JUDGE_API_KEY)."""
    task = "simple_evals.AIME_2025"
    golds = {r["question"]: r["answer"] for rows in fx.AIME2025_PARTS.values() for r in rows}
    model_answers, judge_answers = {}, {}
    for prompt in _prompts(task):
        gold = next(g for q, g in golds.items() if q in prompt)
        if gold == "70":
            model_answers[prompt] = "so $\\boxed{70.0}$"  # sympy: equal
        else:
            words = {"24": "twenty-four", "35": "thirty-five"}[gold]  # sympy: not equal
            model_answers[prompt] = f"so \\boxed{{{words}}}"
            judge_answers[_judge_asks(gold, words)] = "Yes"
    monkeypatch.delenv("JUDGE_API_KEY", raising=False)
    with (
        run_simulator(answers=model_answers) as model,
        run_simulator(answers=judge_answers, require_api_key="judge-secret") as judge,
    ):
        job = write_job(tmp_path / "aime", model.base_url, task, **_judge_params(judge))
        result = cli("eval", "--job", str(job), "-q")
        assert result.code == 2
        assert "JUDGE_API_KEY" in result.err and len(result.err.strip().splitlines()) == 1
        assert model.stats()["requests"] == 0

        monkeypatch.setenv("JUDGE_API_KEY", "judge-secret")
        results = run_job(cli, job)
        assert model.stats()["requests"] == 30
        assert judge.stats()["requests"] == 2  # equal requests are sent once
    assert results["params"]["n_samples"] == 10
    assert results["repeats"]["n"] == 10
    assert results["counts"]["judge_requests"] == 20
    assert results["metrics"]["score"]["value"] == 1.0


def test_a_judge_task_without_a_judge_stops_at_planning(cli, write_yaml):
    path = write_yaml(
        """\
target: {api_endpoint: {url: "http://127.0.0.1:9/v1", model_id: m}}
execution: {output_dir: results}
evaluation:
  tasks: [{name: AIME_2025}]
"""
    )
    result = cli("run", "--config", str(path), "--dry-run")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "config.params.extra.judge.url" in lines[0], lines
    assert "simple_evals.AIME_2025" in lines[0]


def test_the_judge_set_as_the_launcher_spells_it_reaches_job_json(cli, write_yaml, tmp_path):
    path = write_yaml(
        """\
target: {api_endpoint: {url: "http://127.0.0.1:9/v1", model_id: m}}
execution: {output_dir: results}
evaluation:
  nemo_evaluator_config:
    config: {params: {extra: {judge: {url: "http://judge:8000/v1", api_key: MY_JUDGE_KEY}}}}
  tasks:
    - name: math_test_500
      overrides: {config.params.extra.judge.model_id: judge-model}
"""
    )
    from evalfleet.api import plan_run

    plan = plan_run(config=str(path))
    judge = plan.invocation.jobs[0].spec["params"]["judge"]
    assert judge == {
        "url": "http://judge:8000/v1", "model_id": "judge-model", "api_key": "MY_JUDGE_KEY",
        "backend": "openai", "request_timeout": 600, "max_retries": 16, "temperature": 0.0,
        "top_p": 0.0001, "max_tokens": 1024,
    }  # fmt: skip


def test_a_job_file_without_a_judge_is_refused_before_any_request(fixtures, cli, tmp_path):
    with run_simulator() as model:
        job = write_job(tmp_path / "math", model.base_url, MATH)
        result = cli("eval", "--job", str(job), "-q")
        assert model.stats()["requests"] == 0
    assert result.code == 2
    assert "config.params.extra.judge.url" in result.err
