"""The response cache: answers committed per event-loop turn, never lost on a failed write."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from evalfleet.engine.cache import ResponseCache
from evalfleet.exceptions import StoreError


def committed_keys(path: Path) -> list[str]:
    """What another process would find in the file right now."""
    with sqlite3.connect(path) as reader:
        return [key for (key,) in reader.execute("SELECT key FROM responses ORDER BY rowid")]


def answer(text: str) -> dict[str, object]:
    return {"text": text, "finish_reason": "stop", "usage": {"total_tokens": 3}}


def test_answers_of_one_loop_turn_are_committed_together_at_its_end(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        for key in ("a", "b", "c"):
            cache.put_soon(key, answer(key))
        during_turn = committed_keys(path)
        await asyncio.sleep(0)  # the end of this turn: the commit was scheduled for it
        after_turn = committed_keys(path)
        cache.put_soon("d", answer("d"))
        await asyncio.sleep(0)
        return during_turn, after_turn, committed_keys(path)

    during_turn, after_turn, later = asyncio.run(scenario())
    cache.close()
    assert during_turn == []
    assert after_turn == ["a", "b", "c"]
    assert later == ["a", "b", "c", "d"]
    assert ResponseCache(path).load() == {k: answer(k) for k in "abcd"}


def test_close_commits_what_the_loop_had_not_yet_committed(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)

    async def stop_before_the_turn_ends() -> None:
        cache.put_soon("a", answer("a"))
        cache.close()  # as on KeyboardInterrupt: the runner's `finally` closes the cache

    # The commit scheduled for the end of the turn then finds nothing left to do.
    asyncio.run(_run_and_surface_callback_errors(stop_before_the_turn_ends))
    assert committed_keys(path) == ["a"]


async def _run_and_surface_callback_errors(scenario) -> None:
    errors: list[BaseException] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx["exception"]))
    await scenario()
    await asyncio.sleep(0)
    assert errors == []


class _FailingConnection:
    """A connection whose writes fail as on a full disk; everything else is the real one."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.failing = True

    def executemany(self, sql: str, rows: object) -> sqlite3.Cursor:
        if self.failing:
            raise sqlite3.OperationalError("database or disk is full")
        return self.real.executemany(sql, rows)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_failed_commit_stops_the_next_put_and_keeps_the_answers_for_close(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    failing = _FailingConnection(cache._conn)
    cache._conn = failing  # type: ignore[assignment]

    async def scenario() -> None:
        cache.put_soon("a", answer("a"))
        cache.put_soon("b", answer("b"))
        await asyncio.sleep(0)  # the commit fails in the loop's callback
        with pytest.raises(StoreError, match="cannot write the response cache: database or disk"):
            cache.put_soon("c", answer("c"))

    asyncio.run(scenario())
    assert not failing.real.in_transaction, "a failed commit must not leave a transaction open"
    assert committed_keys(path) == []
    failing.failing = False  # space was freed: the final commit stores what had arrived
    cache.close()
    assert committed_keys(path) == ["a", "b"]


def test_a_key_stored_twice_reads_as_its_latest_answer(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put("k", answer("old"))
    cache.put("k", answer("new"))
    cache.close()
    assert ResponseCache(tmp_path / "cache.sqlite").load() == {"k": answer("new")}


def test_a_cache_made_with_a_primary_key_on_the_hash_still_reads_and_writes(tmp_path):
    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as older:
        older.execute(
            "CREATE TABLE responses ("
            " key TEXT PRIMARY KEY, reply TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        older.execute("INSERT INTO responses VALUES ('a', '{\"text\": \"a\"}', 0)")
        older.execute("PRAGMA user_version=1")
    cache = ResponseCache(path)
    cache.put("a", answer("again"))
    cache.put("b", answer("b"))
    cache.close()
    assert ResponseCache(path).load() == {"a": answer("again"), "b": answer("b")}


def _damage_reply(path: Path, key: str, reply: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE responses SET reply = ? WHERE key = ?", (reply, key))


@pytest.mark.parametrize("reply", ['{"text": "cut sho', "not json", "null", "[1, 2]", ""])
def test_a_row_that_is_not_a_json_object_counts_as_not_cached_with_a_warning(tmp_path, reply):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    for key in ("a", "b", "c"):
        cache.put(key, answer(key))
    cache.close()
    _damage_reply(path, "b", reply)
    warnings: list[str] = []
    assert ResponseCache(path).load(warn=warnings.append) == {"a": answer("a"), "c": answer("c")}
    (warning,) = warnings
    assert str(path) in warning and "1 cached answer" in warning and "sent again" in warning


def test_a_damaged_later_row_leaves_the_earlier_answer_of_its_key(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    cache.put("k", answer("old"))
    cache.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO responses VALUES ('k', '{oops', 0)")
    warnings: list[str] = []
    assert ResponseCache(path).load(warn=warnings.append) == {"k": answer("old")}
    assert warnings == []


def test_a_run_over_a_damaged_row_resends_only_that_request_and_says_so(make_job):
    from evalfleet.testing import run_simulator
    from tests.engine.conftest import N_SAMPLES, oracle, results_of, run_eval

    with run_simulator(answers=oracle()) as sim:
        job = make_job(sim.base_url)
        assert run_eval(job).returncode == 0
        expected = results_of(job)["metrics"]
        cache = job.parent / "cache.sqlite"
        with sqlite3.connect(cache) as conn:
            (key,) = conn.execute("SELECT key FROM responses LIMIT 1").fetchone()
        _damage_reply(cache, key, '{"text": "It is')
        sim.reset_stats()

        again = run_eval(job)
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
        assert sim.stats()["requests"] == 1, "only the unreadable answer is sent again"
        assert results_of(job)["metrics"] == expected
        assert results_of(job)["counts"]["responses"] == N_SAMPLES
        log = (job.parent / "logs" / "eval.log").read_text()
        assert "WARNING" in log and "1 cached answer(s) are not valid JSON objects" in log
