"""MGSM: GSM8K's first 250 test problems in 11 languages (2,750 samples), 0-shot CoT.

Prompt (simple-evals' English instruction, used for every language; simple-evals
translates it): "Solve this math problem. Give the reasoning steps before giving the final
answer on the last line by itself in the format of "Answer:". Do not add anything other
than the integer answer after "Answer:".\\n\\n{question}".

Scoring (simple-evals): the text after the last answer prefix (English "Answer" or the
language's own, e.g. "Antwort", "答案"), its last number, commas removed and trailing zeros
of a decimal dropped, must equal the target. Headline `exact_match`, grouped by language.
"""

from __future__ import annotations

import re

from evalfleet.datasets import load_rows
from evalfleet.datasets.sources import MGSM_LANGUAGES
from evalfleet.tasks._common import ChatTask, user
from evalfleet.tasks.base import Sample, Score

INSTRUCTION = (
    "Solve this math problem. Give the reasoning steps before giving the final answer on the "
    'last line by itself in the format of "Answer:". Do not add anything other than the '
    'integer answer after "Answer:".\n\n'
)
ANSWER_PREFIX = {
    "en": "Answer", "bn": "উত্তর", "de": "Antwort", "es": "Respuesta", "fr": "Réponse",
    "ja": "答え", "ru": "Ответ", "sw": "Jibu", "te": "సమాధానం", "th": "คำตอบ", "zh": "答案",
}  # fmt: skip
_NUMBER = re.compile(r"\d+\.?\d*")


def extract(response: str, language: str) -> str | None:
    cut = max(response.rfind("Answer"), response.rfind(ANSWER_PREFIX[language]))
    if cut < 0:
        return None
    numbers = _NUMBER.findall(response[cut:].replace(",", ""))
    if not numbers:
        return None
    answer = numbers[-1].rstrip(".")
    return answer.rstrip("0").rstrip(".") if "." in answer else answer


class MGSM(ChatTask):
    name = "simple_evals.mgsm"
    headline_metric = "exact_match"
    group_label = "language"
    default_params = {"temperature": 0.0, "max_new_tokens": 1024}
    languages: list[str] = list(MGSM_LANGUAGES)  # options.languages

    def _load(self) -> list[Sample]:
        by_language = {lang: load_rows(self.name, f"mgsm-{lang}") for lang in self.languages}
        samples = []
        # Problem by problem, each in every language: `limit_samples` then covers them all.
        for index in range(max(len(rows) for rows in by_language.values())):
            for language, rows in by_language.items():
                if index < len(rows):
                    samples.append(
                        Sample(
                            id=f"mgsm/{language}/{index}",
                            target=rows[index]["answer"].replace(",", "").strip(),
                            messages=user(INSTRUCTION + rows[index]["question"]),
                            metadata={"group": language},
                        )
                    )
        return samples

    def score(self, sample: Sample, response: str) -> Score:
        extracted = extract(response, sample.metadata["group"])
        return Score(float(extracted == sample.target), extracted)
