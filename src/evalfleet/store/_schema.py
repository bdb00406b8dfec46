"""Table definitions and the schema version check.

`PRAGMA user_version` records the schema version, so a later evalfleet can migrate a
store, and an older one refuses a store it does not understand instead of corrupting it.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

# `seq` is an explicit INTEGER PRIMARY KEY so that the "newest first" tie-break survives
# VACUUM, which may renumber the implicit rowid of other tables.
_DDL = (
    """
    CREATE TABLE IF NOT EXISTS invocations (
        seq             INTEGER PRIMARY KEY,
        id              TEXT NOT NULL UNIQUE,
        created_at      REAL NOT NULL,
        executor        TEXT NOT NULL,
        deployment_type TEXT NOT NULL,
        model           TEXT NOT NULL,
        output_dir      TEXT NOT NULL,
        config          TEXT NOT NULL,
        handle          TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS invocations_created ON invocations (created_at, seq)",
    """
    CREATE TABLE IF NOT EXISTS jobs (
        invocation_id TEXT NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
        idx           INTEGER NOT NULL,
        task          TEXT NOT NULL,
        state         TEXT NOT NULL,
        detail        TEXT NOT NULL,
        output_dir    TEXT NOT NULL,
        handle        TEXT NOT NULL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        PRIMARY KEY (invocation_id, idx)
    )
    """,
)


class SchemaTooNewError(Exception):
    """The database was written by a newer evalfleet; carries the version found."""

    def __init__(self, version: int) -> None:
        self.version = version
        super().__init__(
            f"schema version {version} is newer than this evalfleet understands"
            f" ({SCHEMA_VERSION}); upgrade evalfleet"
        )


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the store's schema version (0: no tables yet); refuse newer versions."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(version)
    return version


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables if absent, inside a write transaction.

    Several processes may open a fresh store at once: BEGIN IMMEDIATE serialises them and
    the version is re-read under the lock, so only the first one creates anything.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if schema_version(conn) == 0:
            for statement in _DDL:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
