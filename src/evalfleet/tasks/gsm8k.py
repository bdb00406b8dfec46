"""GSM8K (1,319 test problems), 8-shot chain-of-thought as Llama models report it.

Prompt (lm-eval's `gsm8k_cot_llama`): the eight chain-of-thought exemplars of Wei et al.
(2022) as alternating user/assistant turns, then the problem, each user turn reading
"Given the following problem, reason and give a final answer to the problem.\\nProblem:
{question}\\nYour response should end with \\"The final answer is [answer]\\" where [answer]
is the response to the problem." Defaults: temperature 0, 1024 new tokens.

Scoring: exact match of the final number with the target after `####`, commas, `$` and a
trailing period removed. `exact_match` (the headline) takes the number after "The final
answer is", else the response's last number: lm-eval's strict-match with its
flexible-extract as the fallback (a model that skips the phrase still gets its last number
judged).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from evalfleet.datasets import load_rows
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks._common import ChatTask
from evalfleet.tasks.base import Sample, Score

INSTRUCTION = (
    "Given the following problem, reason and give a final answer to the problem.\n"
    "Problem: {question}\n"
    'Your response should end with "The final answer is [answer]" where [answer] is the '
    "response to the problem."
)

# Wei et al. (2022), "Chain-of-thought prompting", the GSM8K exemplars.
EXEMPLARS = (
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. "
     "After they are done, there will be 21 trees. How many trees did the grove workers plant "
     "today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. "
     "So there must have been 21 - 15 = 6.", "6"),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
     "parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5.", "5"),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they "
     "have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = "
     "74. After eating 35, they had 74 - 35 = 39.", "39"),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How "
     "many lollipops did Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave "
     "Denny 20 - 12 = 8.", "8"),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many "
     "toys does he have now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 "
     "more toys. 5 + 4 = 9.", "9"),
    ("There were nine computers in the server room. Five more computers were installed each "
     "day, from monday to thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So "
     "5 * 4 = 20 computers were added. 9 + 20 is 29.", "29"),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 "
     "more. How many golf balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. "
     "After losing 2 more, he had 35 - 2 = 33 golf balls.", "33"),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she "
     "has 23 - 15 dollars left. 23 - 15 is 8.", "8"),
)  # fmt: skip

_STRICT = re.compile(r"The final answer is ((-?[$0-9.,]{2,})|(-?[0-9]+))")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def normalize(number: str) -> str:
    """lm-eval's regexes_to_ignore: commas, dollar signs, a trailing period."""
    text = number.strip().replace(",", "").replace("$", "")
    text = text.split("#### ")[-1].strip()
    return text[:-1] if text.endswith(".") else text


def extract(response: str, strict: bool = False) -> str | None:
    match = _STRICT.search(response)
    if match:
        return match.group(1)
    if strict:
        return None
    found = _FLEXIBLE.findall(response)
    if not found:
        return None
    last = found[-1]
    return last[0] or last[1]


def target_of(answer: str) -> str:
    """GSM8K's solution text ends with `#### <number>`."""
    return normalize(answer.split("####")[-1])


def fewshot_messages() -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for question, reasoning, answer in EXEMPLARS:
        messages.append({"role": "user", "content": INSTRUCTION.format(question=question)})
        messages.append(
            {"role": "assistant", "content": f"{reasoning} The final answer is {answer}"}
        )
    return messages


class GSM8KCoTLlama(ChatTask):
    name = "lm-evaluation-harness.gsm8k_cot_llama"
    headline_metric = "exact_match"
    default_params = {"temperature": 0.0, "max_new_tokens": 1024}
    num_fewshot = 8  # options.num_fewshot

    def _load(self) -> list[Sample]:
        shots = fewshot_messages()[: 2 * self.num_fewshot]  # a user and an assistant turn each
        return [
            Sample(
                id=f"gsm8k/{index}",
                target=target_of(row["answer"]),
                messages=(
                    *shots,
                    {"role": "user", "content": INSTRUCTION.format(question=row["question"])},
                ),
            )
            for index, row in enumerate(load_rows(self.name, "gsm8k-test"))
        ]

    def score(self, sample: Sample, response: str) -> Score:
        extracted = extract(response)
        hit = extracted is not None and normalize(extracted) == sample.target
        return Score(float(hit), extracted)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return {"exact_match": summarize([value for _, value in per_sample])}
