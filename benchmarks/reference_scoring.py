"""How long scoring HumanEval's 164 canonical solutions takes, evalfleet next to the
reference harnesses' own executors (simple-evals' and bigcode's), same replies.

    EVALFLEET_REFERENCE_PYTHON=<venv>/bin/python python benchmarks/reference_scoring.py

The references run in their own virtualenv (tests/references/harness.py: `.ci/run` builds
it); the ratio is the reference's time over ours, both measured in this one run. Every
solution must pass on both sides, else the timing means nothing and the script stops.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.references.test_code_tasks import (
    TIMEOUT_S,
    _bigcode,
    _simple_evals,
    _timed_scores,
)

from evalfleet.tasks.bigcode import BigcodeHumanEval
from evalfleet.tasks.humaneval import HumanEval, load_problems


def simple_evals_humaneval() -> None:
    problems = load_problems()
    replies = [f"```python\n{p['prompt']}{p['canonical_solution']}```" for p in problems]
    reference = _simple_evals(problems, replies, execute=True)
    assert reference["metrics"]["score"] == 1.0, reference["metrics"]
    task = HumanEval(timeout_s=TIMEOUT_S)
    ours = _timed_scores(task, [task.sample(p) for p in problems], replies)
    print(
        f"simple_evals.humaneval, 164 canonical solutions: reference {reference['seconds']:.2f} s,"
        f" evalfleet {ours:.2f} s (reference / evalfleet = {reference['seconds'] / ours:.1f})"
    )


def bigcode_humaneval() -> None:
    problems = load_problems()
    task = BigcodeHumanEval()
    samples = [task.sample(p) for p in problems]
    generations = ["\n" + p["canonical_solution"] for p in problems]
    replies = {s.prompt: [g] for s, g in zip(samples, generations, strict=True)}
    reference = _bigcode(
        "humaneval", "openai_humaneval", problems, replies, execute=True, n_samples=1
    )
    assert reference["metrics"]["pass@1"] == 1.0, reference["metrics"]
    ours = _timed_scores(task, samples, generations)
    print(
        f"bigcode humaneval, 164 canonical solutions: reference {reference['seconds']:.2f} s,"
        f" evalfleet {ours:.2f} s (reference / evalfleet = {reference['seconds'] / ours:.1f})"
    )


if __name__ == "__main__":
    simple_evals_humaneval()
    bigcode_humaneval()
