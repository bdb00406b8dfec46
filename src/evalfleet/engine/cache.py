"""The response cache: one SQLite row per answer, written the moment it arrives.

Keyed by a hash of the exact request body plus the repeat index, so re-running a job
sends only what was never answered, and `--rescore` needs no request at all. Errors are
never cached. WAL with synchronous=NORMAL: a row survives the process being killed
(it is in the OS page cache) without an fsync per answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from evalfleet.exceptions import StoreError

SCHEMA_VERSION = 1


def canonical_payload(body: dict[str, Any]) -> bytes:
    """The request body as sent: canonical JSON, so equal bodies hash (and cache) equally."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_key(body: dict[str, Any] | bytes, repeat: int) -> str:
    payload = body if isinstance(body, bytes) else canonical_payload(body)
    return hashlib.sha256(payload + b"\x00" + str(repeat).encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StoreError(f"{self.path}: response cache schema {version} is newer than ours")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, reply TEXT NOT NULL, created_at REAL NOT NULL)"
            )
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the response cache: {exc}") from None

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            rows = self._conn.execute("SELECT key, reply FROM responses").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read the response cache: {exc}") from None
        return {key: json.loads(reply) for key, reply in rows}

    def put(self, key: str, reply: dict[str, Any]) -> None:
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, reply, created_at) VALUES (?, ?, ?)",
                (key, json.dumps(reply, separators=(",", ":")), time.time()),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write the response cache: {exc}") from None

    def close(self) -> None:
        self._conn.close()
