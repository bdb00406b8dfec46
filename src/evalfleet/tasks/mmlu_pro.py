"""MMLU-Pro (12,032 test questions, up to 10 choices), 5-shot chain of thought.

Prompt (TIGER-Lab's evaluate_from_api): "The following are multiple choice questions
(with answers) about {category}. Think step by step and then finish your answer with \\"the
answer is (X)\\" where X is the correct letter choice.\\n\\n", then the category's five
validation questions, each "Question:\\n{q}\\nOptions:\\nA. …\\n" followed by its worked
answer ("Answer: Let's think step by step. …"), then the question with "Answer: Let's think
step by step." — all in one user turn. Defaults: temperature 0, 4,096 new tokens.

Scoring (TIGER-Lab's extraction chain): "answer is (X)", else the last "Answer: X", else
the last standalone letter A-J; no random fallback (an unparsable answer is wrong).
Headline `accuracy`, grouped by the 14 categories.
"""

from __future__ import annotations

import re
from typing import Any

from evalfleet.datasets import load_rows
from evalfleet.tasks._common import ChatTask, user
from evalfleet.tasks.base import Sample, Score

LETTERS = "ABCDEFGHIJ"
SHOTS = 5


def _question_block(row: dict[str, Any]) -> str:
    options = [o for o in row["options"] if o != "N/A"]
    lines = "".join(f"{LETTERS[i]}. {option}\n" for i, option in enumerate(options))
    return f"Question:\n{row['question']}\nOptions:\n{lines}"


def build_prompt(row: dict[str, Any], shots: list[dict[str, Any]]) -> str:
    prompt = (
        f"The following are multiple choice questions (with answers) about {row['category']}. "
        'Think step by step and then finish your answer with "the answer is (X)" where X is the '
        "correct letter choice.\n\n"
    )
    for shot in shots:
        worked = shot["cot_content"].replace(
            "A: Let's think step by step.", "Answer: Let's think step by step."
        )
        prompt += _question_block(shot) + worked + "\n\n"
    return prompt + _question_block(row) + "Answer: Let's think step by step."


def extract(response: str) -> str | None:
    match = re.search(r"answer is \(?([A-J])\)?", response)
    if match:
        return match.group(1)
    match = re.search(r".*[aA]nswer:\s*([A-J])", response)
    if match:
        return match.group(1)
    match = re.search(r"\b[A-J]\b(?!.*\b[A-J]\b)", response, re.DOTALL)
    return match.group(0) if match else None


class MMLUProCoT(ChatTask):
    name = "evalfleet.mmlu_pro_cot"
    group_label = "category"
    default_params = {"temperature": 0.0, "max_new_tokens": 4096}
    num_fewshot = SHOTS  # options.num_fewshot

    def _load(self) -> list[Sample]:
        shots: dict[str, list[dict[str, Any]]] = {}
        for row in load_rows(self.name, "mmlu_pro-validation"):
            shots.setdefault(row["category"], []).append(row)
        return [
            Sample(
                id=f"mmlu_pro/{row['question_id']}",
                target=row["answer"],
                messages=user(
                    build_prompt(row, shots.get(row["category"], [])[: self.num_fewshot])
                ),
                metadata={"group": row["category"]},
            )
            for row in load_rows(self.name, "mmlu_pro-test")
        ]

    def score(self, sample: Sample, response: str) -> Score:
        extracted = extract(response)
        return Score(float(extracted == sample.target), extracted)
