"""The database file: lazy creation, schema version, WAL, and errors as StoreError."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from evalfleet.exceptions import StoreError
from evalfleet.store import SCHEMA_VERSION, InvocationStore


def test_reading_missing_store_creates_no_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with InvocationStore(home) as store:
        assert store.list_invocations() == []
    assert not home.exists()

    home.mkdir()
    with InvocationStore(home) as store:
        assert store.list_invocations() == []
    assert list(home.iterdir()) == []


def test_first_write_creates_home(tmp_path: Path, create, store: InvocationStore) -> None:
    assert not store.home.exists()
    create()
    assert store.path.is_file()


def test_schema_version_and_wal(store: InvocationStore, create) -> None:
    create()
    conn = sqlite3.connect(store.path)
    try:
        assert SCHEMA_VERSION == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"invocations", "jobs"} <= tables
    finally:
        conn.close()


def test_empty_database_file_reads_as_empty(home: Path, store: InvocationStore, create) -> None:
    home.mkdir()
    store.path.touch()
    assert store.list_invocations() == []
    inv = create()
    assert [i.invocation_id for i in store.list_invocations()] == [inv.invocation_id]


def test_existing_tables_are_reused(home: Path, create) -> None:
    inv = create()
    with InvocationStore(home) as again:
        again.create_invocation(
            executor="slurm", deployment_type="none", model="m", output_dir="/o", config={}, jobs=[]
        )
        assert len(again.list_invocations()) == 2
        assert again.get(inv.invocation_id) == inv


def test_newer_schema_is_refused(home: Path) -> None:
    home.mkdir()
    conn = sqlite3.connect(home / "store.sqlite")
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    with InvocationStore(home) as store:
        with pytest.raises(StoreError, match="schema version 2") as info:
            store.list_invocations()
        assert str(store.path) in str(info.value)
        with pytest.raises(StoreError, match="schema version 2"):
            _create_minimal(store)


def _create_minimal(store: InvocationStore) -> None:
    store.create_invocation(
        executor="local", deployment_type="none", model="m", output_dir="/o", config={}, jobs=[]
    )


def _assert_store_error(exc: pytest.ExceptionInfo[StoreError], path: Path) -> None:
    message = str(exc.value)
    assert str(path) in message
    assert "\n" not in message
    assert isinstance(exc.value.__cause__, (sqlite3.Error, OSError))
    assert not isinstance(exc.value, sqlite3.Error)


def test_corrupted_database(home: Path) -> None:
    home.mkdir()
    db = home / "store.sqlite"
    db.write_bytes(b"this is not an sqlite database, just junk " * 200)
    with InvocationStore(home) as store:
        for call in (
            store.list_invocations,
            lambda: store.get("abc"),
            lambda: store.update_job("abc.0", state="RUNNING"),
            lambda: _create_minimal(store),
        ):
            with pytest.raises(StoreError) as info:
                call()
            _assert_store_error(info, db)


def test_home_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    with InvocationStore(home) as store:
        with pytest.raises(StoreError) as info:
            _create_minimal(store)
        _assert_store_error(info, store.path)
        assert store.list_invocations() == []  # nothing to read there


def test_database_path_is_a_directory(home: Path) -> None:
    (home / "store.sqlite").mkdir(parents=True)
    with InvocationStore(home) as store:
        with pytest.raises(StoreError) as info:
            store.list_invocations()
        _assert_store_error(info, store.path)
        with pytest.raises(StoreError) as info:
            _create_minimal(store)
        _assert_store_error(info, store.path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_database(home: Path, create, store: InvocationStore) -> None:
    create()
    store.close()
    for path in home.iterdir():
        path.chmod(0o444)
    home.chmod(0o555)
    try:
        with InvocationStore(home) as ro:
            with pytest.raises(StoreError) as info:
                _create_minimal(ro)
            _assert_store_error(info, ro.path)
    finally:
        home.chmod(0o755)
        for path in home.iterdir():
            path.chmod(0o644)


def test_store_is_reusable_after_close(store: InvocationStore, create) -> None:
    inv = create()
    store.close()
    store.close()
    assert store.get(inv.invocation_id) == inv


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_store_is_private_whatever_the_umask(home: Path, create, store) -> None:
    previous = os.umask(0o002)
    try:
        create()
        assert store.list_invocations()
        files = [store.path, *(store.path.with_name(f"store.sqlite-{s}") for s in ("wal", "shm"))]
        assert all(path.exists() for path in files)  # WAL: both exist while it is open
        assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}
        assert _mode(home) == 0o700
    finally:
        os.umask(previous)


def test_a_store_an_older_evalfleet_left_readable_is_made_private(home: Path) -> None:
    with InvocationStore(home) as old:
        _create_minimal(old)
    (home / "store.sqlite").chmod(0o644)  # as the umask made it before
    with InvocationStore(home) as store:
        _create_minimal(store)
        assert _mode(store.path) == 0o600
