"""Resolving ids, prefixes and job ids."""

from __future__ import annotations

import pytest

from evalfleet.exceptions import AmbiguousIdError, NotFoundError, UsageError
from evalfleet.store import InvocationStore


@pytest.fixture
def ids(create) -> list[str]:
    """Three invocations whose ids share prefixes, created oldest to newest."""
    return [create(invocation_id=i).invocation_id for i in ("abc12345", "abc99999", "abd00000")]


def test_exact_and_unique_prefix(store: InvocationStore, ids: list[str]) -> None:
    assert store.get("abc12345").invocation_id == "abc12345"
    assert store.get("abc1").invocation_id == "abc12345"
    assert store.get("abd").invocation_id == "abd00000"


def test_prefix_is_case_insensitive(store: InvocationStore, ids: list[str]) -> None:
    assert store.get("ABC9").invocation_id == "abc99999"
    assert store.get(" AbD0 ").invocation_id == "abd00000"


def test_ambiguous_prefix_lists_candidates(store: InvocationStore, ids: list[str]) -> None:
    with pytest.raises(AmbiguousIdError) as info:
        store.get("abc")
    assert info.value.prefix == "abc"
    assert info.value.candidates == ["abc99999", "abc12345"]  # newest first
    assert "abc12345" in str(info.value)
    assert "abc99999" in str(info.value)
    assert isinstance(info.value, UsageError)

    with pytest.raises(AmbiguousIdError) as info:
        store.get("a")
    assert sorted(info.value.candidates) == sorted(ids)


def test_exact_id_wins_over_longer_ids(store: InvocationStore, create) -> None:
    create(invocation_id="ab")
    create(invocation_id="abcd")
    assert store.get("ab").invocation_id == "ab"
    assert store.get("abc").invocation_id == "abcd"


@pytest.mark.parametrize("query", ["zzz", "", "  ", "abc12345x", "abc%", "abc_", "."])
def test_no_match(store: InvocationStore, ids: list[str], query: str) -> None:
    with pytest.raises(NotFoundError, match="no invocation matches"):
        store.get(query)


def test_not_found_message_quotes_input(store: InvocationStore, ids: list[str]) -> None:
    with pytest.raises(NotFoundError) as info:
        store.get("x")
    assert str(info.value) == "no invocation matches 'x'"


def test_get_accepts_job_id(store: InvocationStore, ids: list[str]) -> None:
    assert store.get("abc12345.1").invocation_id == "abc12345"
    assert store.get("ABD.0").invocation_id == "abd00000"
    with pytest.raises(NotFoundError):
        store.get("abc12345.7")
    with pytest.raises(AmbiguousIdError):
        store.get("abc.0")


def test_get_job(store: InvocationStore, ids: list[str]) -> None:
    job = store.get_job("abc1.1")
    assert job.job_id == "abc12345.1"
    assert job.task == "mmlu"
    assert store.get_job("ABD00000.0").job_id == "abd00000.0"


def test_get_job_errors(store: InvocationStore, ids: list[str]) -> None:
    with pytest.raises(AmbiguousIdError) as info:
        store.get_job("abc.0")
    assert set(info.value.candidates) == {"abc12345", "abc99999"}
    with pytest.raises(NotFoundError, match="no job matches"):
        store.get_job("abc12345.2")
    with pytest.raises(NotFoundError, match="no invocation matches"):
        store.get_job("zzz.0")
    with pytest.raises(NotFoundError, match="not a job id"):
        store.get_job("abc12345")
    with pytest.raises(NotFoundError, match="not a job id"):
        store.get_job("abc12345.x")


def test_reads_on_missing_store_find_nothing(store: InvocationStore) -> None:
    with pytest.raises(NotFoundError):
        store.get("abc")
    with pytest.raises(NotFoundError):
        store.get_job("abc.0")
    assert not store.home.exists()
