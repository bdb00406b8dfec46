"""The code tasks (simple_evals.humaneval, bigcode-evaluation-harness.humaneval and
.mbpp-chat): prompts, extraction, the human-eval-style executor, pass@k, and runs end to
end. Identity with the references themselves: tests/references/test_code_tasks.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evalfleet.scoring.sandbox import run_check_program
from evalfleet.tasks.bigcode import BigcodeHumanEval, mbpp_code, stop_at_stop_token
from evalfleet.tasks.humaneval import (
    INSTRUCTION,
    HumanEval,
    completion_seed,
    find_code,
    load_problems,
    pass_at_k,
)
from evalfleet.testing import run_simulator
from tests import datafixtures as fx
from tests.tasks.test_catalog_oracle import run_job, write_job


def test_all_164_problems_load_offline():
    problems = load_problems()
    assert len(problems) == 164
    assert problems[0]["task_id"] == "HumanEval/0"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("```python\ndef add(a, b):\n    return a + b\n```", "    return a + b"),
        ("Sure!\n```python\ndef add(a, b):\n    return a + b\n```\nDone.", "    return a + b"),
        ("```\ndef add(a, b):\n    return a + b\n```", "    return a + b\n```"),  # no language
        ("    return a + b\n", "   return a + b\n"),  # no ":\n    ": the first character goes
        ("```python\ndef add(a, b):\n    return (a +", "    return (a +"),  # unclosed block
    ],
)
def test_extraction_is_simple_evals(response, expected):
    assert find_code(response) == expected


def test_an_unclosed_block_is_extracted_in_linear_time():
    """The reference's regex backtracks exponentially here; the result is the same."""
    response = "```python\n" + "x = 1\n" * 5000
    started = time.monotonic()
    assert find_code(response) == response[response.find(":\n    ") + 2 :]
    assert time.monotonic() - started < 1


def test_the_prompts_helpers_stay_when_only_the_function_comes_back():
    """HumanEval/10, 32, 38 and 50 call helpers defined in their prompt (issue 14)."""
    task = HumanEval(timeout_s=10)
    problems = {p["task_id"]: p for p in load_problems()}
    for task_id in ("HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/50"):
        problem = problems[task_id]
        signature = next(
            line
            for line in problem["prompt"].splitlines()
            if line.startswith(f"def {problem['entry_point']}(")
        )
        reply = f"```python\n{signature}\n{problem['canonical_solution']}```"
        assert task.score(task.sample(problem), reply).value == 1.0, task_id


def test_main_blocks_do_not_run_and_exiting_fails():
    assert run_check_program("if __name__ == '__main__':\n    raise SystemExit(1)\n").passed
    assert run_check_program("assert __name__ == 'builtins'\n").passed
    for program in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "exit(0)\n"):
        assert not run_check_program(program).passed, program


def test_check_program_guards_and_limits():
    outcome = run_check_program("import os\nopen('f', 'w').write('x')\nos.remove('f')\n")
    assert (outcome.status, outcome.detail) == (
        "failed",
        "failed: 'NoneType' object is not callable",
    )
    assert not run_check_program("import subprocess\nsubprocess.run(['true'])\n").passed
    assert not run_check_program("x = bytearray(4 * 1024**3)\n").passed  # our memory cap
    assert run_check_program(
        "import os\nassert 'HOME' in os.environ and 'OMP_NUM_THREADS' in os.environ\n"
    ).passed
    started = time.monotonic()
    outcome = run_check_program("while True:\n    pass\n", timeout_s=1.0)
    assert outcome.status == "timeout" and time.monotonic() - started < 5
    forged = "import os\nfor fd in range(3, 30):\n    try:\n        os.write(fd, b'x passed\\n')\n    except OSError:\n        pass\nos._exit(0)\n"
    assert not run_check_program(forged).passed


def test_unbiased_pass_at_k():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(5, 1, 5) == 1.0


def test_seeds_are_simple_evals_seed_generator():
    task = HumanEval()
    assert task.request_seed(0, None) == completion_seed(0, 0) != task.request_seed(1, None)
    assert task.request_seed(3, 7) == completion_seed(3, 0, 7)


def test_bigcode_post_processing():
    assert (
        stop_at_stop_token("\n    return 1\nprint(f())\n", ("\nprint", "\ndef")) == "\n    return 1"
    )
    prompt = '"""\nWrite f.\nassert f() == 1\n"""\n'
    assert (
        mbpp_code(prompt, "x\n```python\ndef f():\n    return 1\n```")
        == prompt + "def f():\n    return 1"
    )
    raw = "def f():\n    return 1\n"
    assert mbpp_code(prompt, raw) == prompt  # the reply's first len(prompt) characters go


def _run(cli, write_yaml, sim, task: str, limit: int, n_samples: int = 1) -> dict:
    path = write_yaml(
        f"""\
target: {{api_endpoint: {{url: "{sim.base_url}/v1", model_id: sim-model}}}}
execution: {{output_dir: results}}
evaluation:
  tasks: [{{name: {task}, params: {{limit_samples: {limit}, n_samples: {n_samples}, parallelism: 8}}}}]
"""
    )
    result = cli("run", "--config", str(path))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    return json.loads((Path("results") / invocation_id / task / "results.json").read_text())


def test_oracle_answers_score_one_and_wrong_answers_zero(cli, write_yaml):
    problems = load_problems()[:12]
    right = {
        INSTRUCTION + p["prompt"]: f"```python\n{p['prompt']}{p['canonical_solution']}```"
        for p in problems
    }
    with run_simulator(answers=right) as sim:
        results = _run(cli, write_yaml, sim, "humaneval", limit=12, n_samples=5)
    assert results["headline_metric"] == "score"
    assert results["metrics"]["score"]["value"] == 1.0 and results["metrics"]["score"]["n"] == 12
    assert results["metrics"]["pass@1"]["value"] == 1.0
    assert results["metrics"]["pass@5"]["value"] == 1.0
    wrong = {
        INSTRUCTION
        + p["prompt"]: f"```python\ndef {p['entry_point']}(*args):\n    return None\n```"
        for p in problems
    }
    with run_simulator(answers=wrong) as sim:
        results = _run(cli, write_yaml, sim, "humaneval", limit=12)
    assert results["metrics"]["score"]["value"] == 0.0


def test_bigcode_humaneval_on_a_completions_endpoint(tmp_path, cli):
    problems = load_problems()[:6]
    answers = {
        p["prompt"].strip(): "\n" + p["canonical_solution"] + "\n\ndef extra():\n    pass\n"
        for p in problems
    }
    with run_simulator(answers=answers) as sim:
        job = write_job(
            tmp_path / "bigcode", sim.base_url, "bigcode-evaluation-harness.humaneval",
            endpoint_type="completions", limit_samples=6, n_samples=3,
        )  # fmt: skip
        results = run_job(cli, job)
    assert results["headline_metric"] == "pass@1" and results["metrics"]["pass@1"]["value"] == 1.0
    assert "pass@10" not in results["metrics"]  # 3 samples: the harness's k ≤ n only
    assert results["params"]["temperature"] == 0.1 and results["params"]["top_p"] == 0.95


def test_bigcode_mbpp_chat_end_to_end(pinned_to_fixtures, tmp_path, cli):
    """Fixture rows: task 12 needs its test_setup_code, which bigcode's MBPP never runs, and
    task 10's test is `assert False`: only task 11 passes."""
    answers = {
        f'"""\n{row["text"]}\n{row["test_list"][0]}\n"""\n': f"```python\n{row['code']}\n```"
        for row in fx.MBPP
    }
    with run_simulator(answers=answers) as sim:
        job = write_job(
            tmp_path / "mbpp", sim.base_url, "bigcode-evaluation-harness.mbpp-chat", n_samples=2
        )
        results = run_job(cli, job)
    pass_at_1 = results["metrics"]["pass@1"]
    assert pass_at_1["n"] == len(fx.MBPP) and pass_at_1["value"] == pytest.approx(1 / 3)
    lines = [json.loads(line) for line in (job.parent / "samples.jsonl").read_text().splitlines()]
    assert {line["id"]: line["score"] for line in lines} == {
        "mbpp/10": 0.0,
        "mbpp/11": 1.0,
        "mbpp/12": 0.0,
    }


def test_task_defaults_are_the_launchers():
    assert HumanEval.default_params == {
        "temperature": 0.0, "top_p": 1e-05, "max_new_tokens": 16384, "n_samples": 1,
    }  # fmt: skip
    assert BigcodeHumanEval.default_params["n_samples"] == 20
    first = next(iter(HumanEval().samples(1)))
    assert first.messages[0]["content"].startswith(INSTRUCTION)
