"""Competition math with free-form answers: MATH-500, AIME 2024, AIME 2025.

Prompt (the form DeepSeek/Qwen model cards report): "{problem}\\n\\nPlease reason step by
step, and put your final answer within \\\\boxed{}." Defaults: temperature 0; 4,096 new
tokens for MATH-500, 16,384 for AIME (reasoning models need room; lower it for small ones).
For AIME, published numbers usually average several samples at temperature 0.6: set
`n_samples` and `temperature`, and results.json reports the mean over repeats and their
spread.

Scoring: math-verify extracts the response's answer (the last `\\boxed{}` first, else the
last expression) and checks it is equivalent to the gold answer (`\\frac12` = `0.5`,
`3\\sqrt2` = `\\sqrt{18}`…), in a worker process with a time limit (scoring.math_equiv).
Headline `accuracy`; MATH-500 is also grouped by subject and by level.
"""

from __future__ import annotations

from typing import Any

from evalfleet.datasets import load_rows
from evalfleet.scoring.math_equiv import check
from evalfleet.tasks._common import ChatTask, user
from evalfleet.tasks.base import Sample, Score

SUFFIX = "\n\nPlease reason step by step, and put your final answer within \\boxed{}."


class _MathTask(ChatTask):
    scores_in_subprocesses = True  # each check waits on a worker process: score in threads
    source = ""

    def _rows(self) -> list[dict[str, Any]]:
        return load_rows(self.name, self.source)

    def _sample(self, index: int, row: dict[str, Any]) -> Sample:
        raise NotImplementedError

    def _load(self) -> list[Sample]:
        return [self._sample(index, row) for index, row in enumerate(self._rows())]

    def score(self, sample: Sample, response: str) -> Score:
        verdict = check(f"\\boxed{{{sample.target}}}", response)
        return Score(float(verdict.equal), verdict.extracted)


class Math500(_MathTask):
    name = "evalfleet.math_500"
    group_label = "subject"
    source = "math_500-test"
    default_params = {"temperature": 0.0, "max_new_tokens": 4096}

    def _sample(self, index: int, row: dict[str, Any]) -> Sample:
        return Sample(
            id=str(row.get("unique_id") or f"math_500/{index}"),
            target=str(row["answer"]),
            messages=user(row["problem"] + SUFFIX),
            metadata={"group": row.get("subject"), "category": f"level {row.get('level')}"},
        )


class Aime2024(_MathTask):
    name = "evalfleet.aime_2024"
    source = "aime_2024"
    default_params = {"temperature": 0.0, "max_new_tokens": 16384}

    def _sample(self, index: int, row: dict[str, Any]) -> Sample:
        return Sample(
            id=str(row.get("ID") or f"aime_2024/{index}"),
            target=str(row["Answer"]),
            messages=user(row["Problem"] + SUFFIX),
        )


class Aime2025(_MathTask):
    name = "evalfleet.aime_2025"
    source = "aime_2025"
    default_params = {"temperature": 0.0, "max_new_tokens": 16384}

    def _sample(self, index: int, row: dict[str, Any]) -> Sample:
        return Sample(
            id=f"aime_2025/{row.get('id', index)}",
            target=str(row["answer"]),
            messages=user((row.get("problem") or row["question"]) + SUFFIX),
        )
