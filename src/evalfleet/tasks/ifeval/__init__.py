"""IFEval (Zhou et al., 2023): 541 prompts with 25 kinds of verifiable instructions.

`task.py` is the task, `checks.py` the 25 checks (strict and loose), `text.py` word and
sentence counting and language detection without downloads, `data.py` the pinned prompts.
"""

from evalfleet.tasks.ifeval.data import Prompt, load_prompts
from evalfleet.tasks.ifeval.task import METRICS, IFEval

__all__ = ["METRICS", "IFEval", "Prompt", "load_prompts"]
