"""The Lepton dry-run plan, compared with checked-in golden files (golden/<case>.json).

The golden files are the spec of what evalfleet POSTs to Lepton; review them by eye against
reference/lepton-api.md before accepting a change (EVALFLEET_UPDATE_GOLDEN=1 rewrites them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evalfleet.contract import Invocation
from evalfleet.executors.lepton import LeptonExecutor

NAMES = ["vllm_guide", "nim_guide", "sglang_guide", "none_guide", "full", "judge"]


@pytest.mark.parametrize("name", NAMES)
def test_plan_matches_golden(
    name: str,
    plan_case: Callable[[str], Invocation],
    golden: Callable[[str, Any], None],
) -> None:
    golden(name, LeptonExecutor().plan(plan_case(name)))


def test_every_case_has_exactly_one_golden_file(case_names: list[str]) -> None:
    assert sorted(case_names) == sorted(NAMES)
    files = sorted(p.stem for p in (Path(__file__).parent / "golden").glob("*.json"))
    assert files == sorted(NAMES)
