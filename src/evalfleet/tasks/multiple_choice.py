"""Multiple-choice questions answered in a chat: MMLU, GPQA-Diamond, ARC-Challenge.

Prompt (simple-evals' QUERY_TEMPLATE_MULTICHOICE, 0-shot chain of thought): "Answer the
following multiple choice question. The last line of your response should be of the
following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step
by step before answering.\\n\\n{question}\\n\\nA) …\\nB) …". Defaults: temperature 0, 2,048
new tokens (GPQA: 4,096). Scoring: the letter of the last `Answer: X` line (case-insensitive,
`$X$` allowed) must be the gold letter. Headline `accuracy`.

- mmlu: cais/mmlu test (14,042), grouped by subject (57) and by MMLU's four categories.
- gpqa_diamond: 198 questions; the four choices are shuffled with `random.Random(0)`, one
  permutation per question drawn in file order (as simple-evals does), grouped by domain.
- arc_challenge: AI2 ARC-Challenge test (1,172), 3-5 choices.

HellaSwag is not here: it is scored by log-likelihood, as published (`hellaswag.py`).
"""

from __future__ import annotations

import random
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


MMLU_CATEGORIES = {
    "STEM": (
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
        "college_mathematics college_physics computer_security conceptual_physics "
        "electrical_engineering elementary_mathematics high_school_biology "
        "high_school_chemistry high_school_computer_science high_school_mathematics "
        "high_school_physics high_school_statistics machine_learning"
    ),
    "humanities": (
        "formal_logic high_school_european_history high_school_us_history "
        "high_school_world_history international_law jurisprudence logical_fallacies "
        "moral_disputes moral_scenarios philosophy prehistory professional_law world_religions"
    ),
    "social_sciences": (
        "econometrics high_school_geography high_school_government_and_politics "
        "high_school_macroeconomics high_school_microeconomics high_school_psychology "
        "human_sexuality professional_psychology public_relations security_studies sociology "
        "us_foreign_policy"
    ),
    "other": (
        "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging "
        "management marketing medical_genetics miscellaneous nutrition professional_accounting "
        "professional_medicine virology"
    ),
}
SUBJECT_CATEGORY = {s: c for c, subjects in MMLU_CATEGORIES.items() for s in subjects.split()}


class MMLU(_MultipleChoice):
    name = "simple_evals.mmlu"
    group_label = "subject"

    def _load(self) -> list[Sample]:
        return [
            _mc_sample(
                f"mmlu/{row['subject']}/{index}",
                row["question"],
                list(row["choices"]),
                int(row["answer"]),
                group=row["subject"],
                category=SUBJECT_CATEGORY.get(row["subject"], "other"),
            )
            for index, row in enumerate(load_rows(self.name, "mmlu-test"))
        ]


class GPQADiamond(_MultipleChoice):
    name = "simple_evals.gpqa_diamond"
    group_label = "domain"
    default_params = {"temperature": 0.0, "max_new_tokens": 4096}
    seed = 0  # options.seed

    def _load(self) -> list[Sample]:
        rng = random.Random(self.seed)
        samples = []
        for index, row in enumerate(load_rows(self.name, "gpqa_diamond")):
            permutation = rng.sample(range(4), 4)
            choices = [
                row["Correct Answer"],
                row["Incorrect Answer 1"],
                row["Incorrect Answer 2"],
                row["Incorrect Answer 3"],
            ]
            options = [choices[i].strip() for i in permutation]
            gold = permutation.index(0)
            samples.append(
                _mc_sample(
                    f"gpqa_diamond/{row.get('Record ID') or index}",
                    row["Question"].strip(),
                    options,
                    gold,
                    group=row.get("High-level domain"),
                )
            )
        return samples


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
