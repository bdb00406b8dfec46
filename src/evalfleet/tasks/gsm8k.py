"""GSM8K (1,319 test problems) as lm-eval (nvidia-lm-eval 26.3) runs it for NeMo Evaluator
Launcher: `gsm8k` on a completions endpoint, `gsm8k_cot_llama` on a chat endpoint.

`lm-evaluation-harness.gsm8k` (lm-eval's `gsm8k.yaml`, `--model local-completions`): one
prompt of `num_fewshot` (5) solved train problems drawn at random, then the problem:
"Question: {question}\\nAnswer: {answer}" per example, a blank line after each, ending
"Question: {question}\\nAnswer:". The examples are lm-eval's: one `random.Random(1234)`
(its few-shot seed) draws `sample(train, k)` for each test problem in turn, so a problem's
examples depend on its position, exactly as in lm-eval (`--limit` keeps the first ones).
Stop at "Question:", "</s>", "<|im_end|>"; 256 new tokens (lm-eval's API-model default:
neither the task nor the launcher sets one).

`lm-evaluation-harness.gsm8k_cot_llama` (`gsm8k-cot-llama.yaml`, `--model
local-chat-completions --fewshot_as_multiturn --apply_chat_template`): the eight
chain-of-thought exemplars of Wei et al. (2022) as alternating user/assistant turns, then
the problem; every user turn is "Given the following problem, reason and give a final
answer to the problem.\\nProblem: {question}\\nYour response should end with \\"The final
answer is [answer]\\" where [answer] is the response to the problem.\\n" (the trailing
newline is lm-eval's). The first four of its five stop strings are sent (lm-eval's chat
client keeps `stop[:4]`); 1,024 new tokens (the launcher's `max_new_tokens`).

Both: temperature 1e-07 and top_p 0.9999999 (the launcher's defaults), seed 1234 (lm-eval
sends it with every request).

Scoring, both: lm-eval's two filters, each an `exact_match` against the target with its
`regexes_to_ignore` (",", "\\$", "(?s).*#### ", "\\.$" in turn) and `ignore_case`. Metric
names are the launcher's (`exact_match__<filter>`): `exact_match__strict-match` (the
headline) and `exact_match__flexible-extract`.
- strict-match: gsm8k, the first "#### <number>"; gsm8k_cot_llama, the LAST "The final
  answer is <number>" (lm-eval's `group_select: -1`).
- flexible-extract: the last number-like run (`(-?[$0-9.,]{2,})|(-?[0-9]+)`).
No match is lm-eval's "[invalid]", which never equals a target.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from typing import Any

from evalfleet.datasets import load_rows
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks._common import ChatTask
from evalfleet.tasks.base import Sample, Score

STRICT = "exact_match__strict-match"
FLEXIBLE = "exact_match__flexible-extract"
FALLBACK = "[invalid]"  # lm-eval's RegexFilter fallback

LAUNCHER_DEFAULTS: dict[str, Any] = {"temperature": 1e-07, "top_p": 0.9999999, "seed": 1234}

INSTRUCTION = (
    "Given the following problem, reason and give a final answer to the problem.\n"
    "Problem: {question}\n"
    'Your response should end with "The final answer is [answer]" where [answer] is the '
    "response to the problem.\n"
)

# Wei et al. (2022), "Chain-of-thought prompting", the GSM8K exemplars, as
# gsm8k-cot-llama.yaml's `fewshot_config.samples` (question, target).
EXEMPLARS = (
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. "
     "After they are done, there will be 21 trees. How many trees did the grove workers plant "
     "today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. "
     "So there must have been 21 - 15 = 6. The final answer is 6"),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
     "parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The final answer is 5"),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they "
     "have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = "
     "74. After eating 35, they had 74 - 35 = 39. The final answer is 39"),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How "
     "many lollipops did Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave "
     "Denny 20 - 12 = 8. The final answer is 8"),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many "
     "toys does he have now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 "
     "more toys. 5 + 4 = 9. The final answer is 9"),
    ("There were nine computers in the server room. Five more computers were installed each "
     "day, from monday to thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So "
     "5 * 4 = 20 computers were added. 9 + 20 is 29. The final answer is 29"),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 "
     "more. How many golf balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. "
     "After losing 2 more, he had 35 - 2 = 33 golf balls. The final answer is 33"),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she "
     "has 23 - 15 dollars left. 23 - 15 is 8. The final answer is 8"),
)  # fmt: skip

_HASHES = re.compile(r"#### (\-?[0-9\.\,]+)")
_FINAL_ANSWER = re.compile(r"The final answer is ((-?[$0-9.,]{2,})|(-?[0-9]+))")
_NUMBER = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# exact_match's regexes_to_ignore, applied in this order (both tasks).
_IGNORE = tuple(re.compile(p) for p in (",", r"\$", "(?s).*#### ", r"\.$"))


def regex_filter(pattern: re.Pattern[str], response: str, group_select: int) -> str:
    """lm-eval's RegexFilter (then take_first) on one response."""
    found = pattern.findall(response)
    if not found:
        return FALLBACK
    match = found[group_select]
    if isinstance(match, tuple):
        groups = [group for group in match if group]
        match = groups[0] if groups else FALLBACK
    return match.strip()


def normalize(text: str) -> str:
    """What exact_match compares: regexes_to_ignore removed, lower-cased. (numpy's string
    arrays, which lm-eval compares, drop trailing NULs.)"""
    for pattern in _IGNORE:
        text = pattern.sub("", text)
    return text.lower().rstrip("\x00")


def target_of(answer: str) -> str:
    """The normalised target of a GSM8K solution ("… #### 1,084" -> "1084")."""
    return normalize(answer)


def fewshot_prompt(shots: Sequence[dict[str, Any]], question: str) -> str:
    """lm-eval's gsm8k context: each example, a blank line, then the question."""
    examples = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    return f"{examples}Question: {question}\nAnswer:"


def fewshot_messages(num_fewshot: int = len(EXEMPLARS)) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for question, target in EXEMPLARS[:num_fewshot]:
        messages.append({"role": "user", "content": INSTRUCTION.format(question=question)})
        messages.append({"role": "assistant", "content": target})
    return messages


def _score(sample: Sample, strict: str, flexible: str) -> Score:
    return Score(
        float(normalize(strict) == sample.target),
        strict,
        {FLEXIBLE: float(normalize(flexible) == sample.target)},
    )


def _aggregate(per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
    return {STRICT: summarize([value for _, value in per_sample])}


class GSM8K:
    """lm-eval's `gsm8k`: few-shot from the train split, completions."""

    name = "lm-evaluation-harness.gsm8k"
    endpoint_type = "completions"
    headline_metric = STRICT
    default_params: dict[str, Any] = {
        **LAUNCHER_DEFAULTS,
        "max_new_tokens": 256,
        "stop": ["Question:", "</s>", "<|im_end|>"],
    }
    num_fewshot = 5  # options.num_fewshot
    fewshot_seed = 1234

    def __init__(self) -> None:
        self._samples: list[Sample] | None = None

    def _load(self) -> list[Sample]:
        test = load_rows(self.name, "gsm8k-test")
        train = load_rows(self.name, "gsm8k-train") if self.num_fewshot else []
        return build_gsm8k_samples(test, train, self.num_fewshot, self.fewshot_seed)

    def samples(self, limit: int | None) -> Iterable[Sample]:
        if self._samples is None:
            self._samples = self._load()
        return self._samples[:limit] if limit else self._samples

    def request(self, sample: Sample) -> dict[str, Any]:
        return {"prompt": sample.prompt}

    def score(self, sample: Sample, response: str) -> Score:
        return _score(
            sample, regex_filter(_HASHES, response, 0), regex_filter(_NUMBER, response, -1)
        )

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return _aggregate(per_sample)


def build_gsm8k_samples(
    test: Sequence[dict[str, Any]], train: Sequence[dict[str, Any]], k: int, seed: int = 1234
) -> list[Sample]:
    """One sampler for the whole run, drawing in test order (lm-eval's ContextSampler,
    which also drops a drawn example equal to the problem itself, leaving fewer)."""
    rnd = random.Random(seed)
    population = list(train)
    samples = []
    for index, row in enumerate(test):
        shots = [shot for shot in rnd.sample(population, k) if shot != row] if k else []
        samples.append(
            Sample(
                id=f"gsm8k/{index}",
                target=target_of(row["answer"]),
                prompt=fewshot_prompt(shots, row["question"]),
            )
        )
    return samples


class GSM8KCoTLlama(ChatTask):
    """lm-eval's `gsm8k_cot_llama`: 8-shot chain of thought as chat turns."""

    name = "lm-evaluation-harness.gsm8k_cot_llama"
    headline_metric = STRICT
    default_params: dict[str, Any] = {
        **LAUNCHER_DEFAULTS,
        "max_new_tokens": 1024,
        "stop": ["<|eot_id|>", "<|start_header_id|>user<|end_header_id|>", "Q:", "</s>"],
    }
    num_fewshot = 8  # options.num_fewshot

    def _load(self) -> list[Sample]:
        shots = fewshot_messages(self.num_fewshot)
        return [
            Sample(
                id=f"gsm8k/{index}",
                # doc_to_target: the text after "####", stripped, then normalised.
                target=normalize(row["answer"].split("####")[-1].strip()),
                messages=(
                    *shots,
                    {"role": "user", "content": INSTRUCTION.format(question=row["question"])},
                ),
            )
            for index, row in enumerate(load_rows(self.name, "gsm8k-test"))
        ]

    def score(self, sample: Sample, response: str) -> Score:
        return _score(
            sample,
            regex_filter(_FINAL_ANSWER, response, -1),
            regex_filter(_NUMBER, response, -1),
        )

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return _aggregate(per_sample)
