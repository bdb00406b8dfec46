"""The catalog's answer extraction and prompt details, unit by unit."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from evalfleet.exceptions import EngineError
from evalfleet.scoring import math_equiv
from evalfleet.tasks import gsm8k, mgsm, mmlu_pro
from evalfleet.tasks.base import Sample
from evalfleet.tasks.multiple_choice import extract_letter, multichoice_prompt
from evalfleet.tasks.registry import create_task
from tests.datafixtures import pin_fixture_hashes


@pytest.mark.parametrize(
    ("response", "strict", "flexible"),
    [  # lm-eval's gsm8k_cot_llama filters (proven against lm-eval itself in
        # tests/references/test_lm_eval_generative.py)
        ("... The final answer is $1,500.", "$1,500.", "$1,500."),
        ("The final answer is 16", "16", "16"),
        ("She has 16 left, then 2 more: 18 apples.", "[invalid]", "18"),
        ("The final answer is 5. No: The final answer is 6", "6", "6"),  # the LAST phrase
        ("The final answer is -3.", "-3.", "-3."),
        ("no number at all", "[invalid]", "[invalid]"),
    ],
)
def test_gsm8k_cot_llama_filters(response, strict, flexible):
    assert gsm8k.regex_filter(gsm8k._FINAL_ANSWER, response, -1) == strict
    assert gsm8k.regex_filter(gsm8k._NUMBER, response, -1) == flexible


def test_gsm8k_target_and_eight_shot_prompt():
    assert gsm8k.target_of("12*7=<<12*7=84>>84\n#### 1,084") == "1084"
    assert gsm8k.normalize("$1,500.") == "1500"
    shots = gsm8k.fewshot_messages()
    assert len(shots) == 16 and [m["role"] for m in shots[:2]] == ["user", "assistant"]
    assert shots[1]["content"].endswith("The final answer is 6")
    assert all(m["content"].startswith("Given the following problem") for m in shots[::2])


@pytest.mark.parametrize(
    ("response", "language", "expected"),
    [
        ("Schritte...\nAntwort: 1,250", "de", "1250"),
        ("步骤\n答案：18", "zh", "18"),  # noqa: RUF001 - a real full-width colon
        ("Answer: 7.50", "en", "7.50"),  # scored as 7.5
        ("Answer: 12.0", "fr", ""),  # only the language's own word counts (Réponse)
        ("the result is 12", "en", ""),  # no answer prefix: nothing extracted
    ],
)
def test_mgsm_extraction(response, language, expected):
    """simple-evals' parse_answer (proven against it in tests/references/test_simple_evals_mc.py)."""
    assert mgsm.parse_answer(response, mgsm.LANG_TO_ANSWER_PREFIX[language]) == expected
    assert mgsm.score_mgsm("7.5", "7.50") and not mgsm.score_mgsm("12", "")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Let's see. The answer is (C).", "C"),
        ("so the answer is J", "J"),
        ("Reasoning.\nAnswer: B", "B"),
        ("I pick E because of A.", "A"),  # last standalone letter
        ("nothing", None),
    ],
)
def test_mmlu_pro_extraction_chain(response, expected):
    assert mmlu_pro.extract(response) == expected


def test_mmlu_pro_prompt_has_five_worked_shots_and_drops_na_options():
    row = {"question": "Q?", "options": ["x", "y", "N/A"], "category": "law"}
    shot = {
        "question": "S?", "options": ["a", "b"], "category": "law",
        "cot_content": "A: Let's think step by step. Because. The answer is (A).",
    }  # fmt: skip
    prompt = mmlu_pro.build_prompt(row, [shot] * 5)
    assert prompt.count("Answer: Let's think step by step.") == 6
    assert "C. N/A" not in prompt and prompt.endswith("B. y\nAnswer: Let's think step by step.")


def test_multiple_choice_letter_extraction():
    assert extract_letter("Answer: $C$") == "C"
    assert extract_letter("answer: b\nwait, Answer: D") == "D"  # the last one counts
    assert extract_letter("Answer: E", "ABCD") is None
    prompt = multichoice_prompt("Q?", ["x", "y", "z"])
    assert "one of ABC." in prompt and prompt.endswith("A) x\nB) y\nC) z")


def test_gpqa_shuffle_is_seeded_and_moves_the_gold_answer(data_mirror, monkeypatch):
    pin_fixture_hashes(monkeypatch)
    first = [
        (s.id, s.target, s.messages[-1]["content"])
        for s in create_task("gpqa_diamond").samples(None)
    ]
    second = [
        (s.id, s.target, s.messages[-1]["content"])
        for s in create_task("gpqa_diamond").samples(None)
    ]
    assert first == second
    assert len({target for _, target, _ in first}) > 1  # not always "A"


def test_math_equivalence_works_from_threads():
    def check(pair):
        gold, response = pair
        return math_equiv.check(gold, response).equal

    pairs = [
        ("\\boxed{\\frac{1}{2}}", "so it is $\\boxed{0.5}$"),
        ("\\boxed{3\\sqrt{2}}", "$\\boxed{\\sqrt{18}}$"),
        ("\\boxed{72}", "The angle is $\\boxed{72^\\circ}$."),
        ("\\boxed{5}", "$\\boxed{6}$"),
    ]
    assert threading.current_thread() is threading.main_thread()
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(check, pairs)) == [True, True, True, False]


def test_math_equivalence_timeout_kills_the_worker_and_recovers():
    math_equiv.check("\\boxed{1}", "\\boxed{1}")  # a worker is ready: no import below
    started = time.monotonic()
    # sympy evaluates 10^7! eagerly: minutes of work, cut off after 2 s.
    verdict = math_equiv.check("\\boxed{3}", "$\\boxed{10000000!}$", timeout_s=2)
    assert verdict.timed_out and not verdict.equal
    assert 2 <= time.monotonic() - started < 10
    assert math_equiv.check("\\boxed{2}", "$\\boxed{2}$").equal  # a fresh worker answers


def test_scores_are_pure_functions_of_sample_and_response():
    task = create_task("gsm8k_cot_llama")
    sample = Sample("x", "84", messages=({"role": "user", "content": "q"},))
    assert task.score(sample, "The final answer is 84").value == 1.0
    assert task.score(sample, "The final answer is 84").value == 1.0
    assert task.score(sample, "The final answer is 85").value == 0.0


def test_mgsm_samples_in_the_references_order(data_mirror, monkeypatch):
    """Language by language, as simple-evals lists them: `limit_samples` (its --first_n)
    takes the first Bengali problems."""
    pin_fixture_hashes(monkeypatch)
    first = list(create_task("mgsm").samples(3))
    assert [s.metadata["language"] for s in first] == ["bn", "bn", "de"]
    assert first[2].messages[-1]["content"].startswith("Löse dieses Mathematikproblem.")


def test_a_worker_that_cannot_start_stops_scoring_with_its_reason(monkeypatch):
    math_equiv.shutdown()  # a fresh pool: the next check starts a worker
    monkeypatch.setattr(math_equiv._Worker, "module", "evalfleet.scoring._no_such_worker")
    try:
        with pytest.raises(EngineError, match=r"math-verify worker did not start: .*No module"):
            math_equiv.check("\\boxed{1}", "\\boxed{1}")
    finally:
        math_equiv.shutdown()
