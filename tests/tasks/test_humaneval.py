"""HumanEval: prompt building, code extraction, pass@k, and the oracle run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalfleet.tasks.humaneval import INSTRUCTION, HumanEval, extract_code, load_problems, pass_at_k
from evalfleet.testing import run_simulator

PROMPT = 'def add(a, b):\n    """Add."""\n'


def test_all_164_problems_load_offline():
    problems = load_problems()
    assert len(problems) == 164
    assert problems[0]["task_id"] == "HumanEval/0"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("```python\ndef add(a, b):\n    return a + b\n```", "def add(a, b):\n    return a + b\n"),
        (
            "Sure!\n```\ndef add(a, b):\n    return a + b\n```\nDone.",
            "def add(a, b):\n    return a + b\n",
        ),
        ("    return a + b\n", PROMPT + "    return a + b\n"),
    ],
)
def test_code_extraction(response, expected):
    assert extract_code(response, PROMPT, "add") == expected


def test_imports_of_the_prompt_are_kept_for_a_full_function():
    prompt = "from typing import List\n\n\ndef f(x: List[int]) -> int:\n"
    code = extract_code("```python\ndef f(x: List[int]) -> int:\n    return 1\n```", prompt, "f")
    assert code.startswith("from typing import List\n")


def test_unbiased_pass_at_k():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(5, 1, 5) == 1.0


def _run(cli, write_yaml, sim, limit: int, n_samples: int = 1) -> dict:
    path = write_yaml(
        f"""\
target: {{api_endpoint: {{url: "{sim.base_url}/v1", model_id: sim-model}}}}
execution: {{output_dir: results}}
evaluation:
  tasks: [{{name: humaneval, params: {{limit_samples: {limit}, n_samples: {n_samples}, parallelism: 8}}}}]
"""
    )
    result = cli("run", "--config", str(path))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    return json.loads((Path("results") / invocation_id / "humaneval" / "results.json").read_text())


def test_oracle_answers_score_one_and_wrong_answers_zero(cli, write_yaml):
    problems = load_problems()[:12]
    right = {
        INSTRUCTION + p["prompt"]: f"```python\n{p['prompt']}{p['canonical_solution']}```"
        for p in problems
    }
    with run_simulator(answers=right) as sim:
        results = _run(cli, write_yaml, sim, limit=12, n_samples=5)
    assert results["headline_metric"] == "pass@1"
    assert results["metrics"]["pass@1"]["value"] == 1.0 and results["metrics"]["pass@1"]["n"] == 12
    assert results["metrics"]["pass@5"]["value"] == 1.0
    wrong = {
        INSTRUCTION
        + p["prompt"]: f"```python\ndef {p['entry_point']}(*args):\n    return None\n```"
        for p in problems
    }
    with run_simulator(answers=wrong) as sim:
        results = _run(cli, write_yaml, sim, limit=12)
    assert results["metrics"]["pass@1"]["value"] == 0.0


def test_task_defaults_are_deterministic():
    task = HumanEval()
    assert task.default_params["temperature"] == 0.0
    first = next(iter(task.samples(1)))
    assert first.messages[0]["content"].startswith(INSTRUCTION)
