"""Every catalog task end to end through `evalfleet eval --job`: data downloaded from the
local mirror, prompts sent to the endpoint simulator, which answers the gold answer the way
a model would phrase it (scores 1.0) or a wrong one (scores 0.0).

The gold answers are worked out here from the fixture rows and the prompt text (e.g. which
letter the correct choice got after shuffling), never from the task's own `target`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evalfleet.tasks.mgsm import LANG_TO_ANSWER_PREFIX as ANSWER_PREFIX
from evalfleet.tasks.registry import create_task
from evalfleet.testing import run_simulator
from tests import datafixtures as fx

Answer = Callable[[str], str]


def _row(rows: list[dict], key: str, prompt: str) -> dict:
    found = [row for row in rows if str(row[key]).strip() in prompt]
    assert len(found) == 1, f"no single fixture row in prompt: {prompt[-200:]!r}"
    return found[0]


def _letter_of(prompt: str, text: str, style: str = ")") -> str:
    """The letter the prompt shows next to `text` (the last such option list counts)."""
    pattern = rf"^([A-J]){re.escape(style)} {re.escape(text.strip())}$"
    letters = re.findall(pattern, prompt, re.MULTILINE)
    assert letters, f"{text!r} is not an option in the prompt"
    return letters[-1]


def _other(letter: str) -> str:
    return "B" if letter == "A" else "A"


def gsm8k(prompt: str, right: bool) -> str:
    gold = _row(fx.GSM8K, "question", prompt)["answer"].split("####")[-1].strip()
    value = gold if right else str(int(gold.replace(",", "")) + 1)
    return f"Let me add it up step by step.\nThe final answer is ${value}."


def mgsm(prompt: str, right: bool) -> str:
    language = re.search(r"\[(\w+)\]", prompt).group(1)
    gold = next(a for q, a in fx.MGSM[language] if q in prompt)
    value = gold if right else str(int(gold) + 1)
    return f"Reasoning first.\n{ANSWER_PREFIX[language]}: {value}"


MATH_EQUIVALENT = {  # a different but equal way to write each gold answer
    "\\frac{14}{3}": "14/3",
    "3\\sqrt{2}": "\\sqrt{18}",
    "\\left( 3, \\frac{\\pi}{2} \\right)": "(3, \\pi/2)",
}


def math_500(prompt: str, right: bool) -> str:
    gold = _row(fx.MATH_500, "problem", prompt)["answer"]
    value = MATH_EQUIVALENT[gold] if right else "\\frac{1}{7}"
    return f"Working through it carefully, we get $\\boxed{{{value}}}$."


def aime_2024(prompt: str, right: bool) -> str:
    gold = _row(fx.AIME_2024, "Problem", prompt)["Answer"]
    return f"So the answer is \\boxed{{{gold if right else gold + 1}}}."


def aime_2025(prompt: str, right: bool) -> str:
    gold = int(_row(fx.AIME_2025, "problem", prompt)["answer"])
    return f"Therefore the final answer is $\\boxed{{{gold if right else gold + 1}}}$"


def mmlu(prompt: str, right: bool) -> str:
    row = _row(fx.MMLU, "question", prompt)
    letter = _letter_of(prompt, row["choices"][row["answer"]])
    return f"Let me think.\nAnswer: {letter if right else _other(letter)}"


def mmlu_pro(prompt: str, right: bool) -> str:
    row = _row(fx.MMLU_PRO_TEST, "question", prompt)
    letter = _letter_of(prompt, row["options"][row["answer_index"]])
    return f"Step by step...\n**Answer:** {letter if right else _other(letter)}"


def mmlu_pro_cot(prompt: str, right: bool) -> str:
    row = _row(fx.MMLU_PRO_TEST, "question", prompt)
    letter = _letter_of(prompt, row["options"][row["answer_index"]], ".")
    return f"Step by step... the answer is ({letter if right else _other(letter)})."


def gpqa_diamond(prompt: str, right: bool) -> str:
    row = _row(fx.GPQA, "Question", prompt)
    letter = _letter_of(prompt, row["Correct Answer"])
    return f"Considering each option.\nAnswer: {letter if right else _other(letter)}"


def arc_challenge(prompt: str, right: bool) -> str:
    row = _row(fx.ARC, "question", prompt)
    gold = row["choices"]["text"][list(row["choices"]["label"]).index(row["answerKey"])]
    letter = _letter_of(prompt, gold)
    return f"answer: ${letter if right else _other(letter)}$"


def mbpp(prompt: str, right: bool) -> str:
    row = _row(fx.MBPP, "text", prompt)
    code = row["code"] if right else row["code"].split(":")[0] + ":\n    return None"
    return f"Here it is:\n```python\n{code}\n```"


# lm-eval's log-likelihood tasks (bare arc_challenge, hellaswag, ...) are scored from prompt
# logprobs, not from a reply: tests/tasks/test_hellaswag.py, tests/tasks/test_lm_eval_mc.py.
ORACLES: dict[str, tuple[Callable[[str, bool], str], int]] = {
    "gsm8k_cot_llama": (gsm8k, len(fx.GSM8K)),
    "mgsm": (mgsm, 2 * len(fx.MGSM)),
    "evalfleet.math_500": (math_500, len(fx.MATH_500)),
    "evalfleet.aime_2024": (aime_2024, len(fx.AIME_2024)),
    "evalfleet.aime_2025": (aime_2025, len(fx.AIME_2025)),
    "mmlu": (mmlu, len(fx.MMLU)),
    "mmlu_pro": (mmlu_pro, len(fx.MMLU_PRO_TEST)),
    "evalfleet.mmlu_pro_cot": (mmlu_pro_cot, len(fx.MMLU_PRO_TEST)),
    "gpqa_diamond": (gpqa_diamond, len(fx.GPQA)),
    "evalfleet.arc_challenge_cot": (arc_challenge, len(fx.ARC)),
    "evalfleet.mbpp": (mbpp, 2),  # task 10 is not in the test split
}


def write_job(
    directory: Path,
    base_url: str,
    task: str,
    endpoint_type: str = "chat",
    options: dict[str, Any] | None = None,
    **params: Any,
) -> Path:
    """A job file for `task` against the simulator at `base_url` (`params`: generation
    params, `options`: task options)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = "chat/completions" if endpoint_type == "chat" else "completions"
    spec = {
        "invocation_id": "feed0001",
        "job_id": "feed0001.0",
        "task": task,
        "endpoint": {
            "url": f"{base_url}/v1/{path}",
            "model_id": "sim-model",
            "type": endpoint_type,
        },
        "params": {"parallelism": 4, "max_retries": 1, **params},
        "output_dir": str(directory),
    }
    if options is not None:
        spec["task_options"] = options
    job = directory / "job.json"
    job.write_text(json.dumps(spec))
    return job


def answers_for(task: str, right: bool) -> dict[str, str]:
    answer, _ = ORACLES[task]
    prompts = [s.messages[-1]["content"] for s in create_task(task).samples(None)]
    return {prompt: answer(prompt, right) for prompt in prompts}


def run_job(cli, job: Path, *extra: str) -> dict:
    result = cli("eval", "--job", str(job), "-q", *extra)
    assert result.code == 0, result.err
    return json.loads((job.parent / "results.json").read_text())


@pytest.mark.parametrize("task", sorted(ORACLES))
def test_gold_answers_score_one_and_wrong_answers_zero(task, pinned_to_fixtures, cli, tmp_path):
    _, expected_n = ORACLES[task]
    for right, expected in ((True, 1.0), (False, 0.0)):
        with run_simulator(answers=answers_for(task, right)) as sim:
            job = write_job(tmp_path / f"{task}-{right}", sim.base_url, task)
            results = run_job(cli, job)
        headline = results["metrics"][results["headline_metric"]]
        assert headline["value"] == expected, (task, right, headline)
        assert headline["n"] == expected_n
        assert headline["stderr"] == 0.0 and headline["ci95"] == [expected, expected]
        lines = (job.parent / "samples.jsonl").read_text().splitlines()
        samples = [json.loads(line) for line in lines]
        assert all(s["error"] is None and s["score"] == expected for s in samples)


@pytest.mark.parametrize("task", ["gsm8k_cot_llama", "evalfleet.mmlu_pro_cot"])
def test_a_completions_endpoint_gets_the_turns_as_one_prompt(
    task, pinned_to_fixtures, cli, tmp_path
):
    """A base model behind /v1/completions: few-shot turns become one plain-text prompt."""
    answer, expected_n = ORACLES[task]
    completions = create_task(task, endpoint_type="completions")
    answers = {}
    for sample in completions.samples(None):
        prompt = completions.request(sample)["prompt"]
        assert prompt.endswith(sample.messages[-1]["content"] + "\n")
        answers[prompt] = answer(sample.messages[-1]["content"], True)
    with run_simulator(answers=answers) as sim:
        job = write_job(tmp_path / task, sim.base_url, task, endpoint_type="completions")
        results = run_job(cli, job)
    assert results["endpoint_type"] == "completions"
    assert results["metrics"][results["headline_metric"]]["value"] == 1.0
    assert results["metrics"][results["headline_metric"]]["n"] == expected_n


def test_gsm8k_completions_few_shot_from_the_train_split(pinned_to_fixtures, cli, tmp_path):
    """lm-eval's gsm8k: 5 train examples then "Question: …\nAnswer:", a "#### N" reply."""
    task = create_task("gsm8k", endpoint_type="completions")
    assert task.endpoint_type == "completions"
    answers = {}
    for sample in task.samples(None):
        prompt = task.request(sample)["prompt"]
        assert prompt.count("Question: ") == 6 and prompt.endswith("\nAnswer:")
        row = _row(fx.GSM8K, "question", prompt.rsplit("Question: ", 1)[1])
        gold = row["answer"].split("####")[-1].strip()
        answers[prompt] = f" Adding it up.\n#### {gold}"
    with run_simulator(answers=answers) as sim:
        job = write_job(tmp_path / "gsm8k", sim.base_url, "gsm8k", endpoint_type="completions")
        results = run_job(cli, job)
    assert results["headline_metric"] == "exact_match__strict-match"
    for metric in ("exact_match__strict-match", "exact_match__flexible-extract"):
        assert results["metrics"][metric]["value"] == 1.0
        assert results["metrics"][metric]["n"] == len(fx.GSM8K)


def test_grouped_metrics_and_rescore(pinned_to_fixtures, cli, tmp_path):
    with run_simulator(answers=answers_for("mmlu", True)) as sim:
        job = write_job(tmp_path / "mmlu", sim.base_url, "mmlu")
        results = run_job(cli, job)
    metrics = results["metrics"]  # simple-evals' names: MMLU's categories and their mean
    assert set(metrics) == {"score", "stem", "other", "humanities", "score_macro"}
    assert metrics["other"]["n"] == 1 and metrics["stem"]["value"] == 1.0
    assert metrics["score_macro"]["value"] == 1.0
    again = run_job(cli, job, "--rescore")  # the simulator is gone: the cache alone
    assert again["metrics"] == metrics


def test_math_rescore_reproduces_the_metrics(pinned_to_fixtures, cli, tmp_path):
    with run_simulator(answers=answers_for("evalfleet.math_500", True)) as sim:
        job = write_job(tmp_path / "math", sim.base_url, "evalfleet.math_500")
        results = run_job(cli, job)
    assert results["metrics"]["accuracy/subject:Algebra"]["n"] == 1
    assert results["metrics"]["accuracy/category:level 2"]["n"] == 2
    assert run_job(cli, job, "--rescore")["metrics"] == results["metrics"]


def test_repeats_report_their_mean_and_spread(pinned_to_fixtures, cli, tmp_path):
    with run_simulator(answers=answers_for("evalfleet.aime_2024", True)) as sim:
        job = write_job(tmp_path / "aime", sim.base_url, "evalfleet.aime_2024", n_samples=3)
        results = run_job(cli, job)
    assert results["repeats"] == {"n": 3, "per_repeat": [1.0] * 3, "mean": 1.0, "spread": 0.0}
    assert results["counts"]["responses"] == 3 * len(fx.AIME_2024)


def test_mgsm_and_mmlu_pro_group_by_language_and_category(pinned_to_fixtures, cli, tmp_path):
    with run_simulator(answers=answers_for("mgsm", True)) as sim:
        results = run_job(cli, write_job(tmp_path / "mgsm", sim.base_url, "mgsm"))
    assert set(results["metrics"]) == {
        "score", "score_macro", "group_latin", "group_non_latin", *fx.MGSM_LANGUAGES,
    }  # fmt: skip
    assert results["metrics"]["ja"]["n"] == 2 and results["metrics"]["group_latin"]["n"] == 10
    with run_simulator(answers=answers_for("mmlu_pro", False)) as sim:
        results = run_job(cli, write_job(tmp_path / "pro", sim.base_url, "mmlu_pro"))
    assert set(results["metrics"]) == {"score"}  # simple-evals reports no categories


@pytest.mark.parametrize(
    ("task", "metric"),
    [("gsm8k_cot_llama", "exact_match__strict-match"), ("evalfleet.aime_2024", "accuracy")],
)
def test_evalfleet_run_downloads_in_the_job_process_and_then_runs_offline(
    task, metric, data_mirror, cli, write_yaml
):
    """`evalfleet run` (local executor: `evalfleet eval` in its own process, which for
    aime_2024 starts math-verify workers and must still exit) reads the data through the
    env overrides; a second run with --offline needs only the cache."""
    answers = answers_for(task, True)
    hits_after_sampling = sum(data_mirror.hits.values())
    for flags in ((), ("--offline",)):
        with run_simulator(answers=answers) as sim:
            path = write_yaml(
                f"""\
target: {{api_endpoint: {{url: "{sim.base_url}/v1", model_id: sim-model}}}}
execution: {{output_dir: results}}
evaluation:
  tasks: [{{name: {task}, params: {{parallelism: 4}}}}]
"""
            )
            result = cli(*flags, "run", "--config", str(path))
        assert result.code == 0, result.err
        invocation = result.out.strip().splitlines()[-1]
        results = json.loads((Path("results") / invocation / task / "results.json").read_text())
        assert results["metrics"][metric]["value"] == 1.0
    # The data was downloaded once (by answers_for, in this process), then read from the cache.
    assert sum(data_mirror.hits.values()) == hits_after_sampling == 1


@pytest.mark.parametrize("seed", [None, 7])
def test_each_gpqa_repeat_gets_its_own_choice_order(seed, pinned_to_fixtures, cli, tmp_path):
    """simple-evals draws a fresh choice order for every repeat of a GPQA question; the
    engine sends and scores each repeat's own (the reference proof is in
    tests/references/test_simple_evals_mc.py). Right answers only for the later repeats'
    prompts: sent the first repeat's prompt every time, the score would be 0. `params.seed`
    is simple-evals' --seed, which also draws the orders."""
    task = create_task("gpqa_diamond")
    if seed is not None:
        task.base_seed = seed
    samples = list(task.samples(None))
    n = len(samples)
    firsts = {s.messages[-1]["content"] for s in samples}
    answers = {}
    for r in (1, 2):
        for p, sample in enumerate(samples):
            prompt = task.for_repeat(sample, r * n + p).messages[-1]["content"]
            answers[prompt] = gpqa_diamond(prompt, prompt not in firsts)
    answers.update({prompt: gpqa_diamond(prompt, False) for prompt in firsts})
    with run_simulator(answers=answers) as sim:
        extra = {} if seed is None else {"seed": seed}
        job = write_job(tmp_path / "gpqa", sim.base_url, "gpqa_diamond", n_samples=3, **extra)
        results = run_job(cli, job)
    assert results["metrics"]["score"]["value"] > 0
    lines = [json.loads(line) for line in (job.parent / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * n
    for position, sample in enumerate(samples):
        own = sorted((line for line in lines if line["id"] == sample.id), key=lambda x: x["repeat"])
        expected = [sample] + [task.for_repeat(sample, r * n + position) for r in (1, 2)]
        assert [line["target"] for line in own] == [variant.target for variant in expected]
        assert [line["prompt"] for line in own] == [
            "user: " + variant.messages[-1]["content"] for variant in expected
        ]
    assert len({line["prompt"] for line in lines}) > n  # the orders really differ
