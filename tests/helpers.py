"""Small helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import difflib
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

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


def stand_in_wheel(data: bytes) -> Any:
    """A stand-in for evalfleet's own wheel (`executors.wheel.Wheel`), so plans and scripts
    do not change with every edit of the source; the tests that install it use the real one."""
    from evalfleet.executors.wheel import Wheel

    return Wheel(
        filename="evalfleet-0.1.0+sha0123456789ab-py3-none-any.whl",
        version="0.1.0+sha0123456789ab",
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )
