"""Interim: the simple-evals multiple-choice tasks (being rewritten to match the reference)."""

from evalfleet.tasks.multiple_choice import MMLU as SimpleEvalsMMLU
from evalfleet.tasks.multiple_choice import GPQADiamond as SimpleEvalsGPQADiamond

__all__ = ["SimpleEvalsGPQADiamond", "SimpleEvalsMMLU"]
