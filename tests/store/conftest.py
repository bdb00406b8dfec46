"""Fixtures for the invocation store tests: an isolated home and a store factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from evalfleet.store import InvocationRecord, InvocationStore, NewJob


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A not-yet-existing evalfleet home, also exported as $EVALFLEET_HOME."""
    path = tmp_path / "home"
    monkeypatch.setenv("EVALFLEET_HOME", str(path))
    return path


@pytest.fixture
def store(home: Path) -> Iterator[InvocationStore]:
    """A store on the isolated home, closed after the test."""
    with InvocationStore(home) as s:
        yield s


@pytest.fixture
def create(store: InvocationStore) -> Callable[..., InvocationRecord]:
    """Create an invocation with sensible defaults; keyword arguments override them."""

    def _create(**overrides: object) -> InvocationRecord:
        kwargs: dict = {
            "executor": "local",
            "deployment_type": "vllm",
            "model": "meta/llama-3.1-8b",
            "output_dir": "/results",
            "config": {"execution": {"type": "local"}, "evaluation": {"tasks": ["gsm8k"]}},
            "jobs": [
                NewJob(task="gsm8k", output_dir="/results/gsm8k", handle={"pid": 1}),
                NewJob(task="mmlu", output_dir="/results/mmlu"),
            ],
        }
        kwargs.update(overrides)
        return store.create_invocation(**kwargs)

    return _create
