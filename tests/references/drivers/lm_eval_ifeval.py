"""Score (prompt, response) pairs with lm-eval's own IFEval code (nvidia-lm-eval 26.3,
`lm_eval/tasks/ifeval/utils.py` `process_results`).

Payload: {"rows": [Google's input_data.jsonl rows], "pairs": [[key, response], ...]}.
The rows go through `datasets.Dataset.from_list`, which gives each kwargs dict every
field (unused ones None) as the Hugging Face copy (google/IFEval) that lm-eval loads has.
NLTK_DATA must hold tokenizers/punkt_tab (the test makes one; NLTK's is download-only).
langdetect's global factory is seeded (0) so that its verdicts repeat from run to run.
Answer: {"verdicts": [{"strict": [...], "loose": [...]}, ...], "seconds": scoring time}.
"""

from __future__ import annotations

import logging
import random
import time

from driver_io import answer, read_payload


def main() -> None:
    payload = read_payload()
    from langdetect import DetectorFactory

    import datasets

    DetectorFactory.seed = 0
    random.seed(0)
    logging.disable(logging.CRITICAL)
    from lm_eval.tasks.ifeval.utils import process_results

    docs = {doc["key"]: doc for doc in datasets.Dataset.from_list(payload["rows"])}
    started = time.perf_counter()
    verdicts = []
    for key, response in payload["pairs"]:
        result = process_results(docs[key], [response])
        verdicts.append(
            {
                "strict": result["inst_level_strict_acc"],
                "loose": result["inst_level_loose_acc"],
                "prompt_strict": result["prompt_level_strict_acc"],
                "prompt_loose": result["prompt_level_loose_acc"],
            }
        )
    answer({"verdicts": verdicts, "seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
