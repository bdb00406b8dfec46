"""lm-eval's log-likelihood multiple choice, as nvidia-lm-eval 26.3 (lm-eval 0.4.x) runs it
on a completions endpoint: ARC-Challenge, ARC-Easy, HellaSwag, PIQA, WinoGrande, OpenBookQA.

Each sample gives one (context, continuation) pair per choice (`ConfigurableTask.
construct_requests` for `output_type: multiple_choice`, target delimiter " "):
- one input (ARC, HellaSwag, PIQA, OpenBookQA): context = few-shot examples + the question
  text, continuation = " " + choice;
- several inputs (WinoGrande, "partial evaluation"): context = few-shot examples + the
  sentence up to the blank + the option, continuation = " " + the rest of the sentence.

Prompts (the tasks' yaml): ARC "Question: {question}\\nAnswer:" with `choices.text`, gold
`choices.label.index(answerKey)`; HellaSwag the `process_docs` query (activity_label + ": "
+ ctx_a + " " + ctx_b.capitalize(), WikiHow markup removed) with its preprocessed endings;
PIQA "Question: {goal}\\nAnswer:" with [sol1, sol2], gold `label`; OpenBookQA the bare
`question_stem` with `choices.text`, gold `choices.label.index(answerKey.lstrip())`;
WinoGrande's `preprocess_winogrande` functions (gold: answer "1"/"2").

Few-shot (`ContextSampler.get_context`): each example is its text, " ", its gold choice and
"\\n\\n" (WinoGrande: the gold option's context, then " " + the rest and "\\n\\n" unless the
rest is empty). The examples come from the train split, drawn for each evaluated document in
order by ONE `random.Random(1234)` (lm-eval's default fewshot seed) shared by the whole run:
`rnd.sample(train, k)`, or `k + 1` where lm-eval's `fewshot_split == test_split` test holds
because both are unset (HellaSwag, PIQA, WinoGrande: a quirk, reproduced; the extra draw is
dropped unless it equals the evaluated document). So document i's examples depend on the
draws for documents 0..i-1, exactly as in lm-eval (`--limit N` keeps the first N).
Few-shot counts are the launcher's defaults (HellaSwag 10, WinoGrande 5, the rest 0);
`options.num_fewshot` changes them.

Metrics (`process_results`): `acc` — the choice with the highest summed logprob is gold;
`acc_norm` — the highest logprob per character of the choice (its length without the
delimiter; an empty choice divides by zero as numpy does: -inf, or NaN for 0/0). Ties and
NaNs as `np.argmax`: the first maximum, or the first NaN. WinoGrande reports `acc` only.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from evalfleet.datasets import load_rows
from evalfleet.exceptions import ConfigError
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks.base import Loglikelihood, Sample, Score

TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"
FEWSHOT_SEED = 1234
"""lm-eval's default fewshot sampling seed (`--seed`'s fourth value)."""


@dataclass(frozen=True)
class Doc:
    """One document as lm-eval's task functions see it."""

    row: dict[str, Any]
    """The row as read (lm-eval drops a drawn example equal to the evaluated document)."""
    text: str | None
    """`doc_to_text` (None: several inputs, WinoGrande)."""
    choices: list[str]
    """`doc_to_choice`."""
    gold: int
    """The gold choice's index (`doc_to_target`, or `doc_to_text` for several inputs)."""
    rest: str = ""
    """Several inputs: `doc_to_target`, the continuation shared by every choice."""


def hellaswag_preprocess(text: str) -> str:
    """lm-eval's HellaSwag `preprocess`: WikiHow markup out, spacing fixed."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def per_char(logprob: float, chars: int) -> float:
    """`logprob / chars` as numpy divides float64 arrays (no ZeroDivisionError)."""
    if chars:
        return logprob / chars
    if math.isnan(logprob) or logprob == 0:
        return math.nan
    return math.inf if logprob > 0 else -math.inf


def np_argmax(values: Sequence[float]) -> int:
    """`numpy.argmax`: the first NaN, else the first maximum."""
    best = 0
    for index, value in enumerate(values):
        if math.isnan(value):
            return index
        if value > values[best]:
            best = index
    return best


class _LmEvalMultipleChoice:
    name: ClassVar[str]
    short: ClassVar[str]
    eval_source: ClassVar[str]
    fewshot_source: ClassVar[str]
    draws_one_more: ClassVar[bool] = False
    """lm-eval draws k + 1 examples when the task has no test split (see the module doc)."""
    metric_names: ClassVar[tuple[str, ...]] = ("acc", "acc_norm")
    headline_metric: ClassVar[str] = "acc_norm"

    endpoint_type = "completions"
    request_kind = "loglikelihood"
    default_params: ClassVar[dict[str, Any]] = {}
    num_fewshot: int = 0
    """lm-eval's `--num_fewshot` (the launcher's `config.params.extra.num_fewshot`)."""

    def __init__(self) -> None:
        self._samples: list[Sample] | None = None

    # -- the task's own functions (its yaml) --------------------------------------------
    def doc(self, row: dict[str, Any]) -> Doc:
        raise NotImplementedError

    # -- lm-eval's ConfigurableTask / ContextSampler -------------------------------------
    def example(self, doc: Doc) -> str:
        """One few-shot example (`ContextSampler.get_context`)."""
        if doc.text is None:
            head = doc.choices[doc.gold]
            if doc.rest == "":
                return head
            return head + TARGET_DELIMITER + doc.rest + FEWSHOT_DELIMITER
        return doc.text + TARGET_DELIMITER + doc.choices[doc.gold] + FEWSHOT_DELIMITER

    def doc_pairs(self, doc: Doc, shots: str) -> list[tuple[str, str]]:
        """`fewshot_context` + `construct_requests`: one (context, continuation) per choice."""
        if doc.text is None:
            return [(shots + choice, TARGET_DELIMITER + doc.rest) for choice in doc.choices]
        context = shots + doc.text
        return [(context, TARGET_DELIMITER + choice) for choice in doc.choices]

    def fewshot_contexts(self, docs: Sequence[Doc]) -> list[str]:
        """Each document's few-shot examples, drawn in document order by one generator."""
        k = self.num_fewshot
        if k <= 0:
            return [""] * len(docs)
        pool = [self.doc(row) for row in load_rows(self.name, self.fewshot_source)]
        draws = k + 1 if self.draws_one_more else k
        if draws > len(pool):
            raise ConfigError(
                f"task {self.name}: num_fewshot {k} needs {draws} examples, the "
                f"{self.fewshot_source} split has {len(pool)}"
            )
        rnd = random.Random(FEWSHOT_SEED)
        contexts = []
        for doc in docs:
            drawn = rnd.sample(pool, draws)
            chosen = [shot for shot in drawn if shot.row != doc.row][:k]
            contexts.append("".join(self.example(shot) for shot in chosen))
        return contexts

    # -- the engine's protocol -----------------------------------------------------------
    def samples(self, limit: int | None) -> Iterable[Sample]:
        if self._samples is None:
            docs = [self.doc(row) for row in load_rows(self.name, self.eval_source)]
            self._samples = [
                self._sample(index, doc, shots)
                for index, (doc, shots) in enumerate(
                    zip(docs, self.fewshot_contexts(docs), strict=True)
                )
            ]
        return self._samples[:limit] if limit else self._samples

    def _sample(self, index: int, doc: Doc, shots: str) -> Sample:
        pairs = self.doc_pairs(doc, shots)
        shown = shots + (doc.text if doc.text is not None else doc.row.get("sentence", ""))
        return Sample(
            id=f"{self.short}/{index}",
            target=doc.gold,
            prompt=shown,
            metadata={"pairs": pairs, "choices": doc.choices},
        )

    def pairs(self, sample: Sample) -> list[tuple[str, str]]:
        return [(context, continuation) for context, continuation in sample.metadata["pairs"]]

    def score_loglikelihoods(self, sample: Sample, results: Sequence[Loglikelihood]) -> Score:
        return self.score_logprobs(sample, [result.logprob for result in results])

    def score_logprobs(self, sample: Sample, logprobs: Sequence[float]) -> Score:
        """`process_results` for one document from its choices' summed logprobs."""
        choices: list[str] = sample.metadata["choices"]
        gold = sample.target if sample.target < len(choices) else -100
        pred = np_argmax(logprobs)
        values = {"acc": float(pred == gold)}
        shown = pred
        if "acc_norm" in self.metric_names:
            normed = [per_char(lp, len(c)) for lp, c in zip(logprobs, choices, strict=True)]
            shown = np_argmax(normed)
            values["acc_norm"] = float(shown == gold)
        head = values.pop(self.headline_metric)
        return Score(value=head, extracted=str(shown), metrics=values)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return {self.headline_metric: summarize([value for _, value in per_sample])}


def _arc_doc(row: dict[str, Any]) -> Doc:
    choices = row["choices"]
    return Doc(
        row=row,
        text=f"Question: {row['question']}\nAnswer:",
        choices=list(choices["text"]),
        gold=list(choices["label"]).index(row["answerKey"]),
    )


class ArcChallenge(_LmEvalMultipleChoice):
    """ARC-Challenge test (1,172), 0-shot."""

    name = "lm-evaluation-harness.arc_challenge"
    short = "arc_challenge"
    eval_source = "arc_challenge-test"
    fewshot_source = "arc_challenge-train"

    def doc(self, row: dict[str, Any]) -> Doc:
        return _arc_doc(row)


class ArcEasy(_LmEvalMultipleChoice):
    """ARC-Easy test (2,376), 0-shot."""

    name = "lm-evaluation-harness.arc_easy"
    short = "arc_easy"
    eval_source = "arc_easy-test"
    fewshot_source = "arc_easy-train"

    def doc(self, row: dict[str, Any]) -> Doc:
        return _arc_doc(row)


class HellaSwag(_LmEvalMultipleChoice):
    """HellaSwag validation (10,042), 10-shot from train."""

    name = "lm-evaluation-harness.hellaswag"
    short = "hellaswag"
    eval_source = "hellaswag-validation"
    fewshot_source = "hellaswag-train"
    draws_one_more = True
    num_fewshot = 10

    def doc(self, row: dict[str, Any]) -> Doc:
        context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
        return Doc(
            row=row,
            text=hellaswag_preprocess(row["activity_label"] + ": " + context),
            choices=[hellaswag_preprocess(ending) for ending in row["endings"]],
            gold=int(row["label"]),
        )


class Piqa(_LmEvalMultipleChoice):
    """PIQA validation (1,838, `baber/piqa`), 0-shot."""

    name = "lm-evaluation-harness.piqa"
    short = "piqa"
    eval_source = "piqa-validation"
    fewshot_source = "piqa-train"
    draws_one_more = True

    def doc(self, row: dict[str, Any]) -> Doc:
        return Doc(
            row=row,
            text=f"Question: {row['goal']}\nAnswer:",
            choices=[row["sol1"], row["sol2"]],
            gold=int(row["label"]),
        )


class Winogrande(_LmEvalMultipleChoice):
    """WinoGrande (winogrande_xl) validation (1,267), 5-shot from train, partial scoring."""

    name = "lm-evaluation-harness.winogrande"
    short = "winogrande"
    eval_source = "winogrande_xl-validation"
    fewshot_source = "winogrande_xl-train"
    draws_one_more = True
    num_fewshot = 5
    metric_names = ("acc",)
    headline_metric = "acc"

    def doc(self, row: dict[str, Any]) -> Doc:
        sentence: str = row["sentence"]
        blank = sentence.index("_")
        return Doc(
            row=row,
            text=None,
            choices=[sentence[:blank] + row["option1"], sentence[:blank] + row["option2"]],
            gold={"1": 0, "2": 1}[row["answer"]],
            rest=sentence[blank + 1 :].strip(),
        )


class OpenBookQA(_LmEvalMultipleChoice):
    """OpenBookQA (main) test (500), 0-shot."""

    name = "lm-evaluation-harness.openbookqa"
    short = "openbookqa"
    eval_source = "openbookqa-test"
    fewshot_source = "openbookqa-train"

    def doc(self, row: dict[str, Any]) -> Doc:
        choices = row["choices"]
        return Doc(
            row=row,
            text=row["question_stem"],
            choices=list(choices["text"]),
            gold=list(choices["label"]).index(row["answerKey"].lstrip()),
        )


__all__ = ["ArcChallenge", "ArcEasy", "HellaSwag", "OpenBookQA", "Piqa", "Winogrande"]
