"""simple-evals' competition math, as nvidia-simple-evals 26.3 runs it (`evals/math_eval.py`
with the defaults NeMo Evaluator Launcher passes): math_test_500, AIME_2024, AIME_2025.

Data: HuggingFaceH4/MATH-500 (test); AI-MO/aimo-validation-aime (train) where the problem's
URL says `/2024_AIME`; opencompass/AIME2025 AIME2025-I then AIME2025-II (test).

Prompt, one user turn: math_test_500 and AIME_2024 (no task config in the package) ask for
a last line `Answer: $ANSWER`; AIME_2025 (`configs/tasks/AIME_2025.yml`) uses the
`aa_boxed` template, whose doubled backslashes reach the model as written
(`\\\\boxed{}`). Each request carries the seed simple-evals' SeedGenerator (base 42, or
`params.seed`) derives from its position (repeat x samples + sample).

Extraction: the first `Answer:` line (`(?i)Answer\\s*:\\s*([^\\n]+)`), or for AIME_2025
the `aa_boxed` regex (from the last `\\boxed{` to the response's last `}`). Verdict
(`common.check_equality`): nothing extracted is wrong without asking anyone; AIME_2025
first asks PRM800K's sympy grader (`scoring.prm800k`), right if it says so; otherwise the
LLM judge gets EQUALITY_TEMPLATE with the gold answer and the extracted one, and the answer
is right when its reply, stripped and lowercased, is exactly "yes".

The judge (`config.params.extra.judge`: url, model_id, api_key = the NAME of the env var)
is sent by the engine (`engine/judge.py`). Its defaults are the framework's: backend
openai, temperature 0, top_p 1e-4, 1,024 max tokens, 600 s, 16 retries (AIME_2025: key in
JUDGE_API_KEY). Without url and model_id the run stops at planning: the reference falls
back to a built-in judge instead (gpt-4 behind NVIDIA's internal gateway for
math_test_500 and AIME_2024, meta/llama-3.3-70b-instruct at integrate.api.nvidia.com for
AIME_2025), which evalfleet does not assume.

Defaults: temperature 0, top_p 1e-5, 16,384 new tokens; AIME_2025 10 repeats. Metric
`score`: the mean over samples of each sample's mean over repeats.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from evalfleet.datasets import load_rows
from evalfleet.exceptions import ConfigError
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks._common import ChatTask, user
from evalfleet.tasks._simple_evals import BASE_SEED, completion_seed
from evalfleet.tasks.base import Sample, Score

# simple_evals/evals/math_eval.py
QUERY_TEMPLATE = """
Solve the following math problem step by step. The last line of your response should be of the form Answer: $ANSWER (without quotes) where $ANSWER is the answer to the problem.

{Question}

Remember to put your answer on its own line after "Answer:", and you do not need to use a \\boxed command.
""".strip()

# simple_evals/configs/templates/aa_boxed.template (read as text: its backslashes stay doubled)
AA_BOXED_TEMPLATE = (
    "Solve the following math problem step by step. Put your answer inside \\\\boxed{{}}.\n"
    "\n"
    "{Question}\n"
    "\n"
    "Remember to put your answer inside \\\\boxed{{}}."
)

# simple_evals/common.py ANSWER_PATTERN; configs/regex/aa_boxed.regex
ANSWER_PATTERN = r"(?i)Answer\s*:\s*([^\n]+)"
AA_BOXED_PATTERN = r"(?s)(?i)\\boxed{((?!.*\\boxed{).*)}"

# simple_evals/common.py
EQUALITY_TEMPLATE = r"""
Look at the following two expressions (answers to a math problem) and judge whether they are equivalent. Only perform trivial simplifications

Examples:

    Expression 1: $2x+3$
    Expression 2: $3+2x$

Yes

    Expression 1: 3/2
    Expression 2: 1.5

Yes

    Expression 1: $x^2+2x+1$
    Expression 2: $y^2+2y+1$

No

    Expression 1: $x^2+2x+1$
    Expression 2: $(x+1)^2$

Yes

    Expression 1: 3245/5
    Expression 2: 649

No
(these are actually equal, don't mark them equivalent if you need to do nontrivial simplifications)

    Expression 1: 2/(-3)
    Expression 2: -2/3

Yes
(trivial simplifications are allowed)

    Expression 1: 72 degrees
    Expression 2: 72

Yes
(give benefit of the doubt to units)

    Expression 1: 64
    Expression 2: 64 square feet

Yes
(give benefit of the doubt to units)

---

YOUR TASK


Respond with only "Yes" or "No" (without quotes). Do not include a rationale.

    Expression 1: %(expression1)s
    Expression 2: %(expression2)s
""".strip()

# core_evals/simple_evals/framework.yml: config.params.extra.judge
JUDGE_DEFAULTS: dict[str, Any] = {
    "backend": "openai",
    "request_timeout": 600,
    "max_retries": 16,
    "temperature": 0.0,
    "top_p": 0.0001,
    "max_tokens": 1024,
}
_GENERATION = {"temperature": 0.0, "top_p": 1e-05, "max_new_tokens": 16384}
_AIME_YEAR = re.compile(r"/(\d{4})_AIME")


@functools.lru_cache(maxsize=4096)
def _sympy_equal(extracted: str, gold: str) -> bool:
    from evalfleet.scoring.prm800k import grade_answer

    try:
        return grade_answer(extracted, gold)
    except Exception:  # the reference's run would stop here; this answer is not right
        return False


class _SimpleEvalsMath(ChatTask):
    headline_metric = "score"
    answer_pattern = ANSWER_PATTERN
    template = QUERY_TEMPLATE
    use_sympy_first = False
    default_params: dict[str, Any] = {**_GENERATION, "judge": dict(JUDGE_DEFAULTS)}

    def __init__(self, endpoint_type: str = "chat") -> None:
        super().__init__("chat")  # the reference is a chat evaluation only
        self._pattern = re.compile(self.answer_pattern)

    def _questions(self) -> list[tuple[str, str, str]]:
        """(id, question, gold answer) per row, in the reference's order."""
        raise NotImplementedError

    def _load(self) -> list[Sample]:
        return [
            Sample(id=sample_id, target=gold, messages=user(self.template.format(Question=q)))
            for sample_id, q, gold in self._questions()
        ]

    def request_seed(self, index: int, seed: int | None) -> int:
        return completion_seed(index, base_seed=BASE_SEED if seed is None else seed)

    def extract(self, response: str) -> str:
        match = self._pattern.search(response)
        return match.group(1) if match else ""

    def _settled(self, sample: Sample, extracted: str) -> bool | None:
        """The verdict reached without the judge, if any (`check_equality`'s first steps)."""
        if not extracted:
            return False
        if self.use_sympy_first and _sympy_equal(extracted, str(sample.target)):
            return True
        return None

    def judge_request(self, sample: Sample, response: str) -> dict[str, Any] | None:
        extracted = self.extract(response)
        if self._settled(sample, extracted) is not None:
            return None
        content = EQUALITY_TEMPLATE % {"expression1": sample.target, "expression2": extracted}
        return {"messages": [{"role": "user", "content": content}]}

    def score(self, sample: Sample, response: str, judge: str | None = None) -> Score:
        extracted = self.extract(response)
        settled = self._settled(sample, extracted)
        if settled is not None:
            return Score(float(settled), extracted)
        if judge is None:
            raise ValueError(f"{self.name}: sample {sample.id} needs the judge's reply")
        return Score(float(judge.strip().lower() == "yes"), extracted)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return {"score": summarize([value for _, value in per_sample])}


class SimpleEvalsMath500(_SimpleEvalsMath):
    name = "simple_evals.math_test_500"

    def _questions(self) -> list[tuple[str, str, str]]:
        rows = load_rows(self.name, "math_500-test")
        return [
            (str(row.get("unique_id") or f"math_test_500/{i}"), row["problem"], str(row["answer"]))
            for i, row in enumerate(rows)
        ]


class SimpleEvalsAime2024(_SimpleEvalsMath):
    name = "simple_evals.AIME_2024"

    def _questions(self) -> list[tuple[str, str, str]]:
        rows = load_rows(self.name, "aimo_validation_aime")
        found = []
        for i, row in enumerate(rows):
            year = _AIME_YEAR.search(str(row.get("url") or ""))
            if year is not None and year.group(1) == "2024":
                found.append((f"AIME_2024/{row.get('id', i)}", row["problem"], str(row["answer"])))
        if not found:
            raise ValueError("No AIME 2024 problems found in the dataset.")
        return found


class SimpleEvalsAime2025(_SimpleEvalsMath):
    name = "simple_evals.AIME_2025"
    answer_pattern = AA_BOXED_PATTERN
    template = AA_BOXED_TEMPLATE
    use_sympy_first = True
    default_params = {
        **_GENERATION,
        "n_samples": 10,
        "judge": {**JUDGE_DEFAULTS, "api_key": "JUDGE_API_KEY"},
    }

    def __init__(self, endpoint_type: str = "chat") -> None:
        super().__init__(endpoint_type)
        try:
            import pylatexenc  # noqa: F401  (the sympy grader parses LaTeX with it)
            import sympy  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                f"task {self.name} grades answers with sympy and pylatexenc first, as "
                f"simple-evals does: {exc.name} is not installed (pip install 'evalfleet[math]')"
            ) from None

    def _questions(self) -> list[tuple[str, str, str]]:
        found = []
        for part in ("I", "II"):
            for i, row in enumerate(load_rows(self.name, f"aime2025-{part}")):
                found.append((f"AIME2025-{part}/{i}", row["question"], str(row["answer"])))
        return found
