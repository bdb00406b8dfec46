"""The local executor's tests: a dataset of the arithmetic custom task and its oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine.conftest import oracle, write_dataset


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path)


@pytest.fixture
def answers(tmp_path: Path) -> Path:
    path = tmp_path / "answers.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in oracle().items())
    )
    return path
