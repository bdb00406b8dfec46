"""ARC-Challenge as a 0-shot chain-of-thought chat question (`evalfleet.arc_challenge_cot`):
an evalfleet variant; lm-evaluation-harness.arc_challenge scores choice log-likelihoods.

Prompt (simple-evals' multiple-choice template, letters as many as the choices): "Answer
the following multiple choice question. The last line of your response should be of the
following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think
step by step before answering.\\n\\n{question}\\n\\nA) …\\nB) …". Defaults: temperature 0,
2,048 new tokens. Scoring: the letter of the last `Answer: X` line (case-insensitive,
`$X$` allowed) must be the gold letter. Headline `accuracy`. AI2 ARC-Challenge test
(1,172 questions, 3-5 choices).

simple-evals' own MMLU and GPQA-Diamond are in `simple_evals_mc.py`.
"""

from __future__ import annotations

import re
from typing import Any

from evalfleet.datasets import load_rows
from evalfleet.tasks._common import ChatTask, user
from evalfleet.tasks.base import Sample, Score

LETTERS = "ABCDEFGHIJ"
TEMPLATE = (
    "Answer the following multiple choice question. The last line of your response should be "
    "of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of "
    "{letters}. Think step by step before answering.\n\n{question}\n\n{options}"
)


def multichoice_prompt(question: str, options: list[str]) -> str:
    letters = LETTERS[: len(options)]
    lines = "\n".join(
        f"{letter}) {option}" for letter, option in zip(letters, options, strict=True)
    )
    return TEMPLATE.format(letters=letters, question=question, options=lines)


def extract_letter(response: str, letters: str = "ABCD") -> str | None:
    found = re.findall(rf"(?i)Answer[ \t]*:[ \t]*\$?\(?([{letters}])\)?\$?", response)
    return found[-1].upper() if found else None


class _MultipleChoice(ChatTask):
    def score(self, sample: Sample, response: str) -> Score:
        letters = LETTERS[: sample.metadata.get("n_choices", 4)]
        extracted = extract_letter(response, letters + letters.lower())
        return Score(float(extracted == sample.target), extracted)


def _mc_sample(
    sample_id: str, question: str, options: list[str], gold: int, **metadata: Any
) -> Sample:
    return Sample(
        id=sample_id,
        target=LETTERS[gold],
        messages=user(multichoice_prompt(question, options)),
        metadata={"n_choices": len(options), **metadata},
    )


class ArcChallengeCoT(_MultipleChoice):
    name = "evalfleet.arc_challenge_cot"

    def _load(self) -> list[Sample]:
        samples = []
        for row in load_rows(self.name, "arc_challenge-test"):
            labels = list(row["choices"]["label"])
            samples.append(
                _mc_sample(
                    f"arc_challenge/{row['id']}",
                    row["question"],
                    list(row["choices"]["text"]),
                    labels.index(row["answerKey"]),
                )
            )
        return samples
