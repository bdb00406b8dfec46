"""MGSM as nvidia-simple-evals 26.3 runs it (`simple_evals/evals/mgsm_eval.py`): GSM8K's
first 250 test problems in 11 languages (2,750 samples), 0-shot chain of thought.

Prompt: one user turn, the language's own instruction (`LANG_TO_INSTRUCTIONS`: English
"Solve this math problem. Give the reasoning steps before giving the final answer on the
last line by itself in the format of "Answer:". …", German "Löse dieses
Mathematikproblem. …", …) followed by a blank line and the problem. Samples in the
reference's order: language by language (bn, de, en, es, fr, ja, ru, sw, te, th, zh), 250
each, so `limit_samples` takes the first Bengali problems, as `--first_n` does.

Scoring (`parse_answer`, `score_mgsm`): nothing unless the reply contains the language's
answer word ("Answer", "Antwort", "答え", …); else the text after its last occurrence,
commas removed, its last number (`\\d`: any script's digits, so "৪২" is extracted as
such and is wrong); a trailing "." and, for a decimal, trailing zeros are dropped; it
must equal the target (`str(answer_number)`).

Defaults (the launcher's): temperature 0, top_p 1e-5, 16,384 new tokens, one repeat; the
reference's seed per request. Metrics: `score`, each language's (`bn`, `de`, …),
`group_latin` (de, en, es, fr, sw), `group_non_latin`, and `score_macro`: the mean of all
of those (languages and both groups, as the reference computes it).

Data: the simple-evals blob's TSVs (google-research/url-nlp's files, pinned by sha256);
the reference reads the same problems through the juletxara/mgsm dataset.
"""

# ruff: noqa: RUF001

from __future__ import annotations

import re

from evalfleet.datasets import load_rows
from evalfleet.datasets.sources import MGSM_LANGUAGES
from evalfleet.tasks._common import user
from evalfleet.tasks._simple_evals import SimpleEvalsTask
from evalfleet.tasks.base import Sample, Score

LATIN_LANGUAGES = ("de", "en", "es", "fr", "sw")
EXAMPLES_PER_LANGUAGE = 250  # MGSMEval(num_examples_per_lang=250)
LANG_TO_INSTRUCTIONS = {
    "en": (
        'Solve this math problem. Give the reasoning steps before giving the final answer on the last line by itself in the format of "Answer:". Do not add anything other than the integer answer after "Answer:".\n\n{input}'
    ),
    "bn": (
        'এই গণিতের সমস্যাটি সমাধান করুন। চূড়ান্ত উত্তর দেওয়ার আগে যুক্তিসম্পন্ন পদক্ষেপ প্রদান করুন। চূড়ান্ত উত্তরটি একক সংখ্যা হিসাবে "উত্তর:" এর পরে শেষ লাইনে দিন। "উত্তর:" এর পরে অন্য কিছু যুক্ত করবেন না।.\n\n{input}'
    ),
    "de": (
        'Löse dieses Mathematikproblem. Gib die Schritte zur Begründung an, bevor du die endgültige Antwort in der letzten Zeile alleine im Format "Antwort:" gibst. Füge nichts anderes als die ganzzahlige Antwort nach "Antwort:" hinzu.\n\n{input}'
    ),
    "es": (
        'Resuelve este problema matemático. Proporciona los pasos de razonamiento antes de dar la respuesta final en la última línea por sí misma en el formato de "Respuesta:". No añadas nada más que la respuesta entera después de "Respuesta:".\n\n{input}'
    ),
    "fr": (
        'Résolvez ce problème de mathématiques. Donnez les étapes de raisonnement avant de fournir la réponse finale sur la dernière ligne elle-même dans le format de "Réponse:". N\'ajoutez rien d\'autre que la réponse entière après "Réponse:".\n\n{input}'
    ),
    "ja": (
        'の数学の問題を解いてください。最終的な答えを出す前に、解答の推論過程を記述してください。そして最後の行には "答え:" の形式で答えを記述し、その後には整数の答え以外何も追加しないでください。\n\n{input}'
    ),
    "ru": (
        'Решите эту математическую задачу. Объясните шаги рассуждения перед тем, как дать окончательный ответ в последней строке сам по себе в формате "Ответ:". Не добавляйте ничего, кроме целочисленного ответа после "Ответ:".\n\n{input}'
    ),
    "sw": (
        'Suluhisha tatizo hili la hesabu. Toa hatua za mantiki kabla ya kutoa jibu la mwisho kwenye mstari wa mwisho peke yake katika muundo wa "Jibu:". Usiongeze chochote kingine isipokuwa jibu la integer baada ya "Jibu:".\n\n{input}'
    ),
    "te": (
        "ఈ గణిత సమస్యను పరిష్కరించండి. చివరి సమాధానాన్ని ఇవ్వదానికి ముందు తర్కాత్మక అదుగులను ఇవ్వండి. చివరి పంక్తిలో మాత్రమే 'సమాధానం:' అనే ఆకారంలో చివరి సమాధానాద్ని ఇవ్వండి సమాధానం: తర్వాత పూర్ణాంక సమాధానానికి తప్పించి ఎదేనా చేర్చవద్దు.\n\n{input}"
    ),
    "th": (
        'แก้ปัญหาคณิตศาสตร์นี้ ให้ให้ขั้นตอนการใช้เหตุผลก่อนที่จะให้คำตอบสุดท้ายในบรรทัดสุดท้ายโดยอยู่ในรูปแบบ "คำตอบ:" ไม่ควรเพิ่มอะไรนอกจากคำตอบที่เป็นจำนวนเต็มหลังจาก "คำตอบ:"\n\n{input}'
    ),
    "zh": (
        '解决这个数学问题。在最后一行给出答案前，请提供推理步骤。最后一行应该以 "答案: " 的形式独立给出答案。在 "答案：" 后不要添加除整数答案之外的任何内容。\n\n{input}'
    ),
}
LANG_TO_ANSWER_PREFIX = {
    "en": "Answer",
    "bn": "উত্তর",
    "de": "Antwort",
    "es": "Respuesta",
    "fr": "Réponse",
    "ja": "答え",
    "ru": "Ответ",
    "sw": "Jibu",
    "te": "సమాధానం",
    "th": "คำตอบ",
    "zh": "答案",
}
_NUMBER = re.compile(r"\d+\.?\d*")


def parse_answer(response: str, answer_prefix: str) -> str:
    """`mgsm_eval.parse_answer`: "" when nothing is found."""
    if answer_prefix not in response:
        return ""
    answer_text = response.split(answer_prefix)[-1].strip()
    numbers = _NUMBER.findall(answer_text.replace(",", ""))
    return numbers[-1].rstrip(".") if numbers else ""


def score_mgsm(target: str, prediction: str) -> bool:
    if "." in prediction:
        prediction = prediction.rstrip("0").rstrip(".")
    return target.replace(",", "") == prediction.replace(",", "")


def _target(answer: str) -> str:
    """The TSV's answer as the reference's `str(answer_number)` (an integer)."""
    text = answer.replace(",", "").strip()
    try:
        return str(int(text))
    except ValueError:
        return text


class MGSM(SimpleEvalsTask):
    name = "simple_evals.mgsm"
    add_macro = True
    languages: list[str] = list(MGSM_LANGUAGES)  # options.languages

    def _load(self) -> list[Sample]:
        samples: list[Sample] = []
        for language in self.languages:
            group = "group_latin" if language in LATIN_LANGUAGES else "group_non_latin"
            rows = load_rows(self.name, f"mgsm-{language}")[:EXAMPLES_PER_LANGUAGE]
            for number, row in enumerate(rows):
                samples.append(
                    Sample(
                        id=f"mgsm/{language}/{number}",
                        target=_target(row["answer"]),
                        messages=user(LANG_TO_INSTRUCTIONS[language].format(input=row["question"])),
                        metadata={
                            "language": language,
                            "metrics": (language, group),
                        },
                    )
                )
        return samples

    def score(self, sample: Sample, response: str) -> Score:
        extracted = parse_answer(response, LANG_TO_ANSWER_PREFIX[sample.metadata["language"]])
        return Score(float(score_mgsm(sample.target, extracted)), extracted)
