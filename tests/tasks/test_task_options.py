"""Benchmark settings (`evaluation.tasks[].options`): checked with the config, carried in
job.json, applied by the task — end to end through `evalfleet run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalfleet.tasks.registry import create_task
from evalfleet.testing import run_simulator
from tests.tasks.test_catalog_oracle import ORACLES, answers_for, run_job, write_job

CONFIG = """\
target: {{api_endpoint: {{url: "{url}/v1", model_id: sim-model}}}}
execution: {{output_dir: results}}
evaluation:
  params: {{parallelism: 4}}
  tasks:
{tasks}
"""


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("{name: gsm8k_cot_llama, options: {num_fewshot: 9}}", "options: num_fewshot: expected 0 to 8, got 9"),
        ("{name: gsm8k, options: {num_fewshot: -1}}", "options: num_fewshot: expected 0 to 7473, got -1"),
        ("{name: gsm8k, options: {shots: 2}}",
         "options: shots: not an option of lm-evaluation-harness.gsm8k (its options: num_fewshot)"),
        ("{name: mgsm, options: {languages: [en, xx]}}", "options: languages: 'xx' is not one of bn, de"),
        ("{name: gpqa_diamond, options: {seed: 1}}",
         "options: seed: not an option of simple_evals.gpqa_diamond (its options: none)"),
        ("{name: ifeval, options: {seed: 1}}",
         "options: seed: not an option of lm-evaluation-harness.ifeval (its options: none)"),
        ("{name: mine, dataset: {path: d.jsonl}, scorer: numeric, options: {seed: 1}}",
         "options: options are for catalog tasks, not custom ones"),
    ],
)  # fmt: skip
def test_bad_options_are_one_line_naming_the_key(cli, write_yaml, task, expected) -> None:
    path = write_yaml(CONFIG.format(url="http://127.0.0.1:9", tasks=f"    - {task}"))
    result = cli("run", "--config", str(path), "--dry-run")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("error: evaluation.tasks[0].options") or "evaluation.tasks" in line
    assert expected in line


def test_options_reach_the_task_through_the_job_file(pinned_to_fixtures, cli, write_yaml) -> None:
    zero_shot = create_task("evalfleet.mmlu_pro_cot", options={"num_fewshot": 0})
    answers = {
        **answers_for("gsm8k_cot_llama", True),  # keyed by the question: any number of examples
        **{  # keyed by the whole prompt: the 0-shot prompts, or the model answers "wrong"
            s.messages[-1]["content"]: ORACLES["evalfleet.mmlu_pro_cot"][0](
                s.messages[-1]["content"], True
            )
            for s in zero_shot.samples(None)
        },
    }
    tasks = (
        "    - {name: gsm8k_cot_llama, options: {num_fewshot: 2}, interceptors: {log_samples: 1}}\n"
        "    - {name: evalfleet.mmlu_pro_cot, options: {num_fewshot: 0}, interceptors: {log_samples: 1}}"
    )
    with run_simulator(answers=answers) as sim:
        path = write_yaml(CONFIG.format(url=sim.base_url, tasks=tasks))
        result = cli("run", "--config", str(path))
    assert result.code == 0, result.err
    root = Path("results") / result.out.strip().splitlines()[-1]

    def first_request(task: str) -> dict:
        lines = (root / task / "logs" / "requests.jsonl").read_text().splitlines()
        return json.loads(lines[0])["request"]

    assert json.loads((root / "gsm8k_cot_llama" / "job.json").read_text())["task_options"] == {
        "num_fewshot": 2
    }
    assert len(first_request("gsm8k_cot_llama")["messages"]) == 2 * 2 + 1  # two examples + question
    (question,) = first_request("evalfleet.mmlu_pro_cot")["messages"]  # no examples before it
    assert "Question:" in question["content"] and question["content"].count("Answer:") <= 1
    for task in ("gsm8k_cot_llama", "evalfleet.mmlu_pro_cot"):
        results = json.loads((root / task / "results.json").read_text())
        assert results["metrics"][results["headline_metric"]]["value"] == 1.0


def test_mgsm_runs_only_the_languages_asked_for(pinned_to_fixtures, cli, tmp_path) -> None:
    with run_simulator(answers=answers_for("mgsm", True)) as sim:
        job = write_job(tmp_path / "mgsm", sim.base_url, "mgsm")
        spec = json.loads(job.read_text())
        job.write_text(json.dumps({**spec, "task_options": {"languages": ["de", "en"]}}))
        results = run_job(cli, job)
    metrics = results["metrics"]
    assert set(metrics) == {"score", "score_macro", "de", "en", "group_latin"}
    assert metrics["score"]["n"] == 4 and metrics["score"]["value"] == 1.0


def test_a_bad_option_in_a_job_file_is_one_line(cli, tmp_path) -> None:
    job = write_job(tmp_path / "mgsm", "http://127.0.0.1:9", "mgsm")
    spec = json.loads(job.read_text())
    job.write_text(json.dumps({**spec, "task_options": {"languages": ["xx"]}}))
    result = cli("eval", "--job", str(job), "-q")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith("error: task 'simple_evals.mgsm': options.languages: 'xx' is not one of")
