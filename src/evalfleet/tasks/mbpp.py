"""MBPP (Austin et al. 2021): the 500 test problems (task ids 11-510), 0-shot, chat.

Data: `google-research-datasets/mbpp`, `full` test split (parquet).

Prompt (the original paper's wording, asking for one code block): "You are an expert Python
programmer, and here is your task: {text} Your code should pass these tests:\\n\\n{tests}\\n\\n
Reply with the complete code in a single ```python code block." Defaults: temperature 0,
1,024 new tokens. Scoring: the first code block (or the whole reply), the problem's
`test_setup_code` and its three asserts run in the sandbox (scoring.sandbox); pass@1, and
pass@k for k in 5, 10 ≤ n_samples with the unbiased estimator.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from evalfleet.datasets import load_rows
from evalfleet.scoring.sandbox import run_python
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks._common import ChatTask, user
from evalfleet.tasks.base import Sample, Score
from evalfleet.tasks.humaneval import pass_at_k

CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
TEST_IDS = range(11, 511)
TEMPLATE = (
    "You are an expert Python programmer, and here is your task: {text} Your code should pass "
    "these tests:\n\n{tests}\n\nReply with the complete code in a single ```python code block."
)


def extract_code(response: str) -> str:
    match = CODE_BLOCK.search(response)
    return match.group(1) if match else response


class MBPP(ChatTask):
    name = "evalfleet.mbpp"
    headline_metric = "pass@1"
    scores_in_subprocesses = True
    default_params = {"temperature": 0.0, "max_new_tokens": 1024}

    def __init__(self, endpoint_type: str = "chat", timeout_s: float = 10.0) -> None:
        super().__init__(endpoint_type)
        self.timeout_s = timeout_s

    def _load(self) -> list[Sample]:
        return [
            Sample(
                id=f"mbpp/{row['task_id']}",
                target="\n".join(row["test_list"]),
                messages=user(TEMPLATE.format(text=row["text"], tests="\n".join(row["test_list"]))),
                metadata={"setup": row.get("test_setup_code") or ""},
            )
            for row in load_rows(self.name, "mbpp-test")
            if int(row["task_id"]) in TEST_IDS
        ]

    def score(self, sample: Sample, response: str) -> Score:
        code = extract_code(response)
        program = f"{sample.metadata['setup']}\n{code}\n\n{sample.target}\n"
        outcome = run_python(program, self.timeout_s)
        return Score(1.0 if outcome.passed else 0.0, code)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        metrics = {"pass@1": summarize([value for _, value in per_sample])}
        for k in (5, 10):
            if k <= self.n_samples:
                values = [
                    pass_at_k(self.n_samples, round(v * self.n_samples), k) for _, v in per_sample
                ]
                metrics[f"pass@{k}"] = summarize(values)
        return metrics
