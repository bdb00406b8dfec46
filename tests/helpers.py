"""Small helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import difflib
import os
import sqlite3
from pathlib import Path

import pytest


def assert_matches_golden(path: Path, actual: str) -> None:
    """Compare `actual` with the golden file; EVALFLEET_UPDATE_GOLDEN=1 rewrites it instead."""
    if os.environ.get("EVALFLEET_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.is_file():
        pytest.fail(
            f"{path} is missing; run with EVALFLEET_UPDATE_GOLDEN=1 to create it", pytrace=False
        )
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"golden/{path.name}",
                tofile="actual",
            )
        )
        pytest.fail(
            f"{path.name} differs from its golden file (EVALFLEET_UPDATE_GOLDEN=1 rewrites it "
            f"after you have checked the change):\n{diff}",
            pytrace=False,
        )


def cache_rows(cache: Path) -> int:
    """Answers stored in a job's response cache (0 while the engine is still creating it:
    a test polling a running job can see the file before its table)."""
    with sqlite3.connect(cache) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return 0
            raise
