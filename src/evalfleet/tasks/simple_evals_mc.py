"""simple-evals' multiple-choice tasks as nvidia-simple-evals 26.3 runs them: MMLU, MMLU-Pro
and GPQA-Diamond (`simple_evals/evals/{mmlu,mmlu_pro,gpqa}_eval.py`, `common.py`).

All three: 0-shot, one user turn, no system message; temperature 0, top_p 1e-5, 16,384 new
tokens, the reference's seed per request (`_simple_evals.py`); headline `score`.

- mmlu: cais/mmlu, the 57 subjects' test splits loaded one by one in the reference's order
  (14,042 questions). Prompt `QUERY_TEMPLATE_MULTICHOICE` ("Answer the following multiple
  choice question. The last line of your response should be of the following format:
  'Answer: $LETTER' …"). Extraction: the reply through `normalize_response` (markdown
  bold, `$\\boxed{`, `\\text`, `$`, braces… removed), then the FIRST of the multilingual
  "Answer:" patterns that matches anywhere (English, then Bengali, Hindi, …), its first
  match, through `normalize_extracted_answer` (Arabic, Bengali and full-width letters to
  A-D). A lowercase letter is extracted as such and is wrong. Metrics: `score`, the four
  categories (`stem`, `humanities`, `social_sciences`, `other`) and `score_macro`.
- mmlu_pro: TIGER-Lab/MMLU-Pro test (12,032): ten lettered lines A-J whatever the number of
  options (pandas pads the shorter rows; the padding shows as `nan`, as under pandas >= 3,
  which the reference's requirements allow; pandas 2 would show `None`). Extraction:
  `normalize_response`, then the first `Answer: X` (markdown-tolerant, case-insensitive,
  X a letter not followed by a letter or digit). Metric: `score`.
- gpqa_diamond: the 198 questions (the simple-evals blob's gpqa_diamond.csv; the reference
  reads the same file from Idavidrein/gpqa, which needs a Hugging Face token); the choices
  permuted by `random.Random(SeedGenerator(42).get_seed(1))`, one `rng.sample(range(4), 4)`
  per example in order. Cells pandas reads as missing ("N/A", "NA", "null", "", …) show as
  `nan`. Extraction: the first `Answer: X` (X in A-D, either case) of the raw reply; a
  lowercase letter is wrong. Metric: `score`. With `n_samples` > 1 the reference draws a
  new permutation for every repeat; the engine repeats a sample as it is, so every repeat
  here gets the first one.
"""

# ruff: noqa: RUF001

from __future__ import annotations

import random
import re
from typing import Any

from evalfleet.datasets import load_rows
from evalfleet.tasks._common import user
from evalfleet.tasks._simple_evals import BASE_SEED, SimpleEvalsTask, completion_seed
from evalfleet.tasks.base import Sample, Score

QUERY_TEMPLATE_MULTICHOICE = (
    "Answer the following multiple choice question. The last line of your response should be "
    "of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. "
    "Think step by step before answering.\n\n{Question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"
)
MMLU_PRO_TEMPLATE = (
    "\nAnswer the following multiple choice question. The last line of your response should "
    "be in the following format: 'Answer: A/B/C/D/E/F/G/H/I/J' (e.g. 'Answer: A'). \n\n"
    "{Question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}\nE) {E}\nF) {F}\nG) {G}\nH) {H}\nI) {I}\n"
    "J) {J}\n"
)
PANDAS_MISSING = "nan"
"""How the reference's prompts show a value pandas holds as missing."""
PANDAS_NA_STRINGS = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
     "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)  # fmt: skip
"""pandas.read_csv's default missing-value strings (how `datasets` reads a CSV)."""

MULTILINGUAL_ANSWER_PATTERN_TEMPLATE = "(?i){}\\s*([A-D]|[أ-د]|[অ]|[ব]|[ড]|[ঢ]|[Ａ]|[Ｂ]|[Ｃ]|[Ｄ]|[অআইঈউঊ]|[अ-ड]|[А-Да-д]|[Α-Δα-δ]|[א-ד]|[ㄱ-ㄷ가-다]|[①②③④]|[Ⅰ-Ⅳⅰ-ⅳ]|[٠-٣۰-۳]|[1-4a-d])"
MULTILINGUAL_ANSWER_REGEXES = (
    "Answer\\s*:",
    "Answer\\s*:\u200b\u200b\u200b\u200b\u200b\u200b",
    "উত্তর\\s*:",
    "उत्तर\\s*:",
    "উত্তরঃ",
    "উত্তর\\s*:",
    "Antwort\\s*:",
    "답변\\s*:",
    "정답\\s*:",
    "답\\s*:",
    "答案\\s*：",
    "答案\\s*:",
    "答\\s*：",
    "答\\s*:",
    "答复\\s*：",
    "答曰\\s*：",
    "الإجابة:",
    "الجواب:",
    "إجابة:",
    "الإجابة النهائية:",
    "الإجابة الصحيحة:",
    "الإجابة الصحيحة هي:",
    "الإجابة هي:",
    "Respuesta\\s*:",
    "Risposta\\s*:",
    "答え\\s*:",
    "答え\\s*：",
    "回答\\s*:",
    "回答\\s*：",
    "解答\\s*:",
    "Jawaban\\s*:",
    "Réponse\\s*:",
    "Resposta\\s*:",
    "Jibu\\s*:",
    "Idahun\\s*:",
    "Ìdáhùn\\s*:",
    "Idáhùn\\s*:",
    "Àmọ̀nà\\s*:",
    "Àdáhùn\\s*:",
    "Ànúgọ\\s*:",
    "Àṣàyàn\\s*:",
    "መልስ\\s*:",
    "উঃ\\s*:",
    "Odpověď\\s*:",
    "Απάντηση\\s*:",
    "پاسخ\\s*:",
    "جواب\\s*:",
    "Sagot\\s*:",
    "Amsa\\s*:",
    "תשובה\\s*:",
    "Azịza\\s*:",
    "Жооп\\s*:",
    "Atsakymas\\s*:",
    "Valiny\\s*:",
    "Jawapan\\s*:",
    "Antwoord\\s*:",
    "Yankho\\s*:",
    "Odpowiedź\\s*:",
    "Răspuns\\s*:",
    "Ответ\\s*:",
    "පිළිතුර\\s*:",
    "Mhinduro\\s*:",
    "Jawaab\\s*:",
    "Odgovor\\s*:",
    "Svar\\s*:",
    "సమాధానం\\s*:",
    "Cevap\\s*:",
    "Відповідь\\s*:",
    "Câu trả lời\\s*:",
)

MMLU_PRO_PATTERN = re.compile(
    r"(?i)[\*\_]{0,2}Answer[\*\_]{0,2}\s*:[\s\*\_]{0,2}\s*([A-Z])(?![a-zA-Z0-9])"
)
ANSWER_PATTERN_MULTICHOICE = re.compile(r"(?i)Answer[ \t]*:[ \t]*([A-D])")
_MULTILINGUAL = tuple(
    re.compile(MULTILINGUAL_ANSWER_PATTERN_TEMPLATE.format(prefix))
    for prefix in MULTILINGUAL_ANSWER_REGEXES
)

_NORMALIZE_RESPONSE = (
    "**", "$\\boxed{", "}$", "\\$", "$\\text{", "$", "\\mathrm{", "\\{", "\\text", "\\(",
    "\\mathbf{", "{", "\\boxed",
)  # fmt: skip
_LETTER_FORMS = (
    ("أ", " A"), ("ب", " B"), ("ج", " C"), ("د", " D"),  # Arabic
    ("অ", " A"), ("ব", " B"), ("ড", " C"), ("ঢ", " D"),  # Bengali
    ("Ａ", " A"), ("Ｂ", " B"), ("Ｃ", " C"), ("Ｄ", " D"),  # full-width
)  # fmt: skip


def normalize_response(response: str) -> str:
    """`common.normalize_response`: these substrings removed, in this order."""
    for part in _NORMALIZE_RESPONSE:
        if part in response:
            response = response.replace(part, "")
    return response


def normalize_extracted_answer(extracted: str) -> str:
    """`common.normalize_extracted_answer`."""
    for letter, latin in _LETTER_FORMS:
        extracted = extracted.replace(letter, latin)
    return extracted.strip()


def extract_mmlu(response: str) -> str | None:
    """MMLUEval: the first multilingual pattern that matches the normalised reply."""
    text = normalize_response(response)
    for pattern in _MULTILINGUAL:
        match = pattern.search(text)
        if match:
            return normalize_extracted_answer(match.group(1))
    return None


def extract_mmlu_pro(response: str) -> str | None:
    match = MMLU_PRO_PATTERN.search(normalize_response(response))
    return normalize_extracted_answer(match.group(1)) if match else None


def extract_gpqa(response: str) -> str | None:
    match = ANSWER_PATTERN_MULTICHOICE.search(response)
    return match.group(1) if match else None


MMLU_CATEGORY = {
    "abstract_algebra": "stem", "anatomy": "other", "astronomy": "stem",
    "business_ethics": "other", "clinical_knowledge": "other", "college_biology": "stem",
    "college_chemistry": "stem", "college_computer_science": "stem",
    "college_mathematics": "stem", "college_medicine": "other", "college_physics": "stem",
    "computer_security": "stem", "conceptual_physics": "stem", "econometrics": "social_sciences",
    "electrical_engineering": "stem", "elementary_mathematics": "stem",
    "formal_logic": "humanities", "global_facts": "other", "high_school_biology": "stem",
    "high_school_chemistry": "stem", "high_school_computer_science": "stem",
    "high_school_european_history": "humanities", "high_school_geography": "social_sciences",
    "high_school_government_and_politics": "social_sciences",
    "high_school_macroeconomics": "social_sciences", "high_school_mathematics": "stem",
    "high_school_microeconomics": "social_sciences", "high_school_physics": "stem",
    "high_school_psychology": "social_sciences", "high_school_statistics": "stem",
    "high_school_us_history": "humanities", "high_school_world_history": "humanities",
    "human_aging": "other", "human_sexuality": "social_sciences",
    "international_law": "humanities", "jurisprudence": "humanities",
    "logical_fallacies": "humanities", "machine_learning": "stem", "management": "other",
    "marketing": "other", "medical_genetics": "other", "miscellaneous": "other",
    "moral_disputes": "humanities", "moral_scenarios": "humanities", "nutrition": "other",
    "philosophy": "humanities", "prehistory": "humanities", "professional_accounting": "other",
    "professional_law": "humanities", "professional_medicine": "other",
    "professional_psychology": "social_sciences", "public_relations": "social_sciences",
    "security_studies": "social_sciences", "sociology": "social_sciences",
    "us_foreign_policy": "social_sciences", "virology": "other", "world_religions": "humanities",
}  # fmt: skip
"""mmlu_eval.subject2category; its key order is the order the subjects are loaded in."""


class _LetterTask(SimpleEvalsTask):
    def _extract(self, response: str) -> str | None:
        raise NotImplementedError

    def score(self, sample: Sample, response: str) -> Score:
        extracted = self._extract(response)
        return Score(float(extracted == sample.target), extracted)


class SimpleEvalsMMLU(_LetterTask):
    name = "simple_evals.mmlu"
    add_macro = True

    def _load(self) -> list[Sample]:
        samples: list[Sample] = []
        for subject in MMLU_CATEGORY:
            for row in load_rows(self.name, f"mmlu-{subject}-test"):
                a, b, c, d = row["choices"]
                prompt = QUERY_TEMPLATE_MULTICHOICE.format(
                    Question=row["question"], A=a, B=b, C=c, D=d
                )
                samples.append(
                    Sample(
                        id=f"mmlu/{len(samples)}",
                        target="ABCD"[row["answer"]],
                        messages=user(prompt),
                        metadata={
                            "subject": row["subject"],
                            "metrics": (MMLU_CATEGORY.get(row["subject"], "other"),),
                        },
                    )
                )
        return samples

    def _extract(self, response: str) -> str | None:
        return extract_mmlu(response)


class SimpleEvalsMMLUPro(_LetterTask):
    name = "simple_evals.mmlu_pro"

    def _load(self) -> list[Sample]:
        rows = load_rows(self.name, "mmlu_pro-test")
        width = max((len(row["options"]) for row in rows), default=0)
        samples: list[Sample] = []
        for row in rows:
            options = [*row["options"], *[PANDAS_MISSING] * (width - len(row["options"]))]
            prompt = MMLU_PRO_TEMPLATE.format(
                Question=row["question"], **dict(zip("ABCDEFGHIJ", options, strict=False))
            )
            samples.append(
                Sample(
                    id=f"mmlu_pro/{row['question_id']}",
                    target=row["answer"],
                    messages=user(prompt),
                    metadata={"category": row["category"]},
                )
            )
        return samples

    def _extract(self, response: str) -> str | None:
        return extract_mmlu_pro(response)


def _cell(value: Any) -> str:
    return PANDAS_MISSING if value is None or value in PANDAS_NA_STRINGS else str(value)


class SimpleEvalsGPQADiamond(_LetterTask):
    name = "simple_evals.gpqa_diamond"

    def __init__(self, endpoint_type: str = "chat") -> None:
        super().__init__(endpoint_type)
        self.base_seed = BASE_SEED  # simple-evals' --seed: the engine sets params.seed here
        self._rng: random.Random | None = None
        self._permutations: list[list[int]] = []

    def _permutation(self, index: int) -> list[int]:
        """The reference's `index`-th draw: one `Random(get_seed(1))` permutes its examples
        list (the rows, then the rows again per repeat) in order."""
        if self._rng is None:
            self._rng = random.Random(completion_seed(1, base_seed=self.base_seed))
        while len(self._permutations) <= index:
            self._permutations.append(self._rng.sample(range(4), 4))
        return self._permutations[index]

    def _load(self) -> list[Sample]:
        samples: list[Sample] = []
        for index, row in enumerate(load_rows(self.name, "gpqa_diamond")):
            right = _cell(row["Correct Answer"])
            answers = [right, *(_cell(row[f"Incorrect Answer {i}"]) for i in (1, 2, 3))]
            samples.append(
                self._permuted(
                    f"gpqa_diamond/{row.get('Record ID') or index}",
                    _cell(row["Question"]),
                    answers,
                    self._permutation(index),
                    {"domain": row.get("High-level domain")},
                )
            )
        return samples

    def for_repeat(self, sample: Sample, index: int) -> Sample:
        """Repeat number `index` (repeat x samples + position) of `sample`: the reference
        draws a fresh choice order for every repeat of every question."""
        meta = sample.metadata
        extra = {k: v for k, v in meta.items() if k not in ("permutation", "answers", "question")}
        return self._permuted(
            sample.id, meta["question"], meta["answers"], self._permutation(index), extra
        )

    @staticmethod
    def _permuted(
        sample_id: str,
        question: str,
        answers: list[str],
        permutation: list[int],
        metadata: dict[str, Any],
    ) -> Sample:
        choices = [answers[i] for i in permutation]
        prompt = QUERY_TEMPLATE_MULTICHOICE.format(
            Question=question, A=choices[0], B=choices[1], C=choices[2], D=choices[3]
        )
        return Sample(
            id=sample_id,
            target="ABCD"[choices.index(answers[0])],  # the reference's: first equal text
            messages=user(prompt),
            metadata={
                **metadata,
                "permutation": permutation,
                "answers": answers,
                "question": question,
            },
        )

    def _extract(self, response: str) -> str | None:
        return extract_gpqa(response)
