"""Interim: lm-eval log-likelihood multiple choice (being generalised from hellaswag.py)."""

from evalfleet.tasks.hellaswag import HellaSwag

__all__ = ["HellaSwag"]
