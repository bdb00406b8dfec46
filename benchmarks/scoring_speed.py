"""How long scoring a full benchmark's responses takes (issue target: GSM8K's 1,319 < 1 s).

    python benchmarks/scoring_speed.py [--math 500]

Scores synthetic responses with the real tasks' `score` and `aggregate` (extraction,
comparison, mean, stderr, bootstrap CI) — no data download, no endpoint:
- gsm8k: 1,319 responses, a third each in the "The final answer is N" form, ending on a
  bare number, and wrong;
- math_500: N responses checked by math-verify in its worker processes (first call
  includes starting them), equivalent LaTeX forms and wrong answers mixed.
Prints wall time per benchmark and per response.
"""

from __future__ import annotations

import argparse
import time

from evalfleet.tasks.base import Sample
from evalfleet.tasks.competition_math import Math500
from evalfleet.tasks.gsm8k import GSM8K


def gsm8k_seconds(n: int = 1319) -> tuple[float, float]:
    task = GSM8K()
    samples = [Sample(f"gsm8k/{i}", str(1000 + i), messages=()) for i in range(n)]
    responses = []
    for i, sample in enumerate(samples):
        value = int(sample.target)
        form = i % 3
        if form == 0:
            responses.append(
                f"Step one.\nStep two: {value - 5} + 5.\nThe final answer is ${value:,}."
            )
        elif form == 1:
            responses.append(f"Adding {i} and {value - i} gives {value}")
        else:
            responses.append(f"The final answer is {value + 1}")
    start = time.perf_counter()
    scored = [(s, task.score(s, r).value) for s, r in zip(samples, responses, strict=True)]
    metrics = task.aggregate(scored)
    elapsed = time.perf_counter() - start
    return elapsed, metrics["exact_match"].value


MATH_PAIRS = [
    ("\\frac{14}{3}", "so $\\boxed{14/3}$"),
    ("3\\sqrt{2}", "$\\boxed{\\sqrt{18}}$"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "$\\boxed{(3, \\pi/2)}$"),
    ("72", "$\\boxed{72^\\circ}$"),
    ("5", "$\\boxed{6}$"),
]


def math_seconds(n: int) -> tuple[float, float]:
    from concurrent.futures import ThreadPoolExecutor

    task = Math500()
    work = []
    for i in range(n):
        gold, response = MATH_PAIRS[i % len(MATH_PAIRS)]
        work.append((Sample(f"m/{i}", gold, messages=()), response))
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:  # as the engine scores tasks that wait on processes
        values = list(pool.map(lambda pair: task.score(*pair).value, work))
    metrics = task.aggregate([(s, v) for (s, _), v in zip(work, values, strict=True)])
    return time.perf_counter() - start, metrics["accuracy"].value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--math", type=int, default=500)
    args = parser.parse_args()
    seconds, accuracy = gsm8k_seconds()
    verdict = "ok" if seconds < 1.0 else "OVER 1 s"
    print(
        f"gsm8k    1319 responses  {seconds * 1000:8.1f} ms  "
        f"{seconds / 1319 * 1e6:7.1f} µs/response  exact_match {accuracy:.3f}  {verdict}"
    )
    seconds, accuracy = math_seconds(args.math)
    print(
        f"math_500 {args.math:4d} responses  {seconds * 1000:8.1f} ms  "
        f"{seconds / args.math * 1e6:7.1f} µs/response  accuracy {accuracy:.3f}"
    )


if __name__ == "__main__":
    main()
