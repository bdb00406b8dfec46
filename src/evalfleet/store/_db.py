"""One SQLite connection per store object: opening, pragmas, transactions, errors.

Many evalfleet processes (launchers, `status` polls, jobs reporting back) write the same
file at once. WAL lets readers proceed while one process writes, `busy_timeout` makes a
writer wait for the lock instead of failing with "database is locked", and BEGIN
IMMEDIATE takes the write lock before reading, so a read-modify-write (merging handles)
can never lose another process's update.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalfleet.contract.files import PRIVATE_FILE, create_private, make_private_dirs
from evalfleet.exceptions import StoreError
from evalfleet.store._schema import SchemaTooNewError, create_schema, schema_version

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's transaction before giving up."""


class Database:
    """A lazily opened connection to the store file at `path`.

    Nothing touches the file system until the first read or write: reading a store that
    does not exist yet yields no connection at all, so listing never creates files.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._schema_ready = False
        self._wal_ready = False

    def exists(self) -> bool:
        """Whether the database file exists (a store nobody has written to does not)."""
        return self.path.exists()

    @contextmanager
    def translate(self) -> Iterator[None]:
        """Turn sqlite3 and OS errors into a one-line StoreError naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"invocation store {self.path}: {_one_line(exc)}") from exc
        except SchemaTooNewError as exc:
            raise StoreError(f"invocation store {self.path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"invocation store {self.path}: {_one_line(exc)}") from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection | None]:
        """Yield a connection inside one read transaction, or None if there is no store.

        One transaction gives every query in the block the same snapshot, so an
        invocation and its jobs are always read consistently.
        """
        with self.translate():
            conn = self._reader()
            if conn is None:
                yield None
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside a BEGIN IMMEDIATE transaction, committed on success."""
        with self.translate():
            conn = self._writer()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection; a later read or write opens a new one."""
        conn, self._conn = self._conn, None
        self._schema_ready = self._wal_ready = False
        if conn is not None:
            with self.translate():
                conn.close()

    def _reader(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            self._open()
        assert self._conn is not None
        if not self._schema_ready:
            if schema_version(self._conn) == 0:
                return None  # an empty file: nothing written yet
            self._schema_ready = True
        return self._conn

    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            make_private_dirs(self.path.parent)
            create_private(self.path)  # SQLite gives its -wal and -shm files the same mode
            _make_private(self.path)
            self._open()
        assert self._conn is not None
        if not self._wal_ready:
            _enable_wal(self._conn)
            self._wal_ready = True
        if not self._schema_ready:
            if schema_version(self._conn) == 0:
                create_schema(self._conn)
            self._schema_ready = True
        return self._conn

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        self._conn = conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL mode (persistent), retrying while others hold locks.

    Changing the journal mode needs an exclusive lock and SQLite does not always apply
    the busy handler to it, so concurrent first writers retry here themselves.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    mode: object = None
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                # SQLite answers with the old mode (no error) when it cannot switch.
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(
                f"cannot switch to WAL journal mode (still {mode!r}); is the file system local?"
            )
        time.sleep(0.01)


def _make_private(path: Path) -> None:
    """Take group and other access away from a store an older evalfleet made with the
    umask's mode (0644): it names every endpoint and model. Best effort: a store another
    user owns (shared on purpose) is left as it is."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            if file.stat().st_mode & 0o077:
                file.chmod(PRIVATE_FILE)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
