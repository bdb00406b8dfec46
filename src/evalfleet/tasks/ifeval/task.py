"""IFEval as an evalfleet task: the prompt sent as-is in one user message, every
instruction checked strictly and loosely.

Metrics (as lm-eval names them): `prompt_level_strict_acc` (headline: all of a prompt's
instructions followed), `prompt_level_loose_acc`, `inst_level_strict_acc` and
`inst_level_loose_acc` (over the 834 instructions of the 541 prompts).

Defaults are what NeMo Evaluator Launcher runs (nvidia-lm-eval 26.3, `ifeval.yaml` with
the launcher's gen_kwargs): 1,280 new tokens (the task's `max_gen_toks`), temperature
1e-07 and top_p 0.9999999 (the launcher's), seed 1234 (lm-eval sends it with every
request), no stop strings.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks.base import Sample, Score
from evalfleet.tasks.ifeval import text
from evalfleet.tasks.ifeval.checks import verdicts
from evalfleet.tasks.ifeval.data import Prompt, load_prompts

METRICS = (
    "prompt_level_strict_acc",
    "prompt_level_loose_acc",
    "inst_level_strict_acc",
    "inst_level_loose_acc",
)


def to_sample(prompt: Prompt) -> Sample:
    return Sample(
        id=str(prompt.key),
        target=list(prompt.instruction_ids),
        messages=({"role": "user", "content": prompt.prompt},),
        metadata={"instruction_ids": prompt.instruction_ids, "kwargs": prompt.kwargs},
    )


class IFEval:
    name = "lm-evaluation-harness.ifeval"
    endpoint_type = "chat"
    headline_metric = METRICS[0]
    default_params: dict[str, Any] = {
        "temperature": 1e-07,
        "top_p": 0.9999999,
        "max_new_tokens": 1280,
        "seed": 1234,
    }

    def __init__(self, data_path: str | Path | None = None) -> None:
        self.data_path = data_path
        # Instruction-level verdicts of every scored response, by sample id (one entry
        # per repeat): `aggregate` only receives one number per sample.
        self._verdicts: dict[str, list[tuple[list[bool], list[bool]]]] = {}

    def samples(self, limit: int | None) -> Iterable[Sample]:
        text.require()
        prompts = load_prompts(self.data_path)
        return [to_sample(p) for p in (prompts[:limit] if limit else prompts)]

    def request(self, sample: Sample) -> dict[str, Any]:
        return {"messages": list(sample.messages or ())}

    def score(self, sample: Sample, response: str) -> Score:
        ids, kwargs = sample.metadata["instruction_ids"], sample.metadata["kwargs"]
        strict, loose = verdicts(response, ids, kwargs)
        self._verdicts.setdefault(sample.id, []).append((strict, loose))
        shown = json.dumps({"strict": strict, "loose": loose})
        return Score(float(all(strict)), shown)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        values: dict[str, list[float]] = {name: [] for name in METRICS}
        for sample, _ in per_sample:
            repeats = self._verdicts.get(sample.id)
            if not repeats:
                continue
            for level, index in (("strict", 0), ("loose", 1)):
                verdicts = [repeat[index] for repeat in repeats]
                values[f"prompt_level_{level}_acc"].append(
                    statistics.fmean(float(all(v)) for v in verdicts)
                )
                values[f"inst_level_{level}_acc"].extend(
                    statistics.fmean(float(v[i]) for v in verdicts) for i in range(len(verdicts[0]))
                )
        return {name: summarize(v) for name, v in values.items() if v}
