"""Answer comparison used by simple scorers: normalisation, numbers, patterns."""

from __future__ import annotations

import re
import string

_NUMBER = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_text(text: str, ignore_case: bool = True) -> str:
    text = " ".join(text.strip().split())
    text = text.translate(_PUNCTUATION).strip()
    return text.lower() if ignore_case else text


def parse_number(text: str) -> float | None:
    cleaned = text.replace(",", "").replace("$", "").strip()
    try:
        return float(cleaned)
    except ValueError:
        return None


def last_number(text: str) -> str | None:
    """The last number in a response: how most math answers end."""
    found = _NUMBER.findall(text)
    return found[-1].replace("$", "") if found else None


def numbers_equal(a: float, b: float, rel_tol: float = 1e-6) -> bool:
    return abs(a - b) <= rel_tol * max(1.0, abs(a), abs(b))
