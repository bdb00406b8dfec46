"""`InvocationStore`: create, resolve, list and update invocations and their jobs."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from evalfleet.exceptions import AmbiguousIdError, NotFoundError, StoreError
from evalfleet.store._db import Database
from evalfleet.store._paths import (
    DB_FILENAME,
    check_invocation_id,
    default_home,
    new_invocation_id,
    split_job_id,
)
from evalfleet.store._records import JOB_STATES, InvocationRecord, JobRecord, NewJob

_INV_COLS = "id, created_at, executor, deployment_type, model, output_dir, config, handle"
_JOB_COLS = "invocation_id, idx, task, state, detail, output_dir, handle, created_at, updated_at"
_NEWEST_FIRST = "ORDER BY created_at DESC, seq DESC"
_MAX_ID_ATTEMPTS = 100


class InvocationStore:
    """The invocation database under an evalfleet home directory.

    Every evalfleet command that launches, inspects or kills runs goes through this
    object, so it keeps one connection open for its lifetime; use one per thread and
    `close()` it (or use it as a context manager) when done.
    """

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.path = self.home / DB_FILENAME
        self._db = Database(self.path)

    def __enter__(self) -> InvocationStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"InvocationStore({str(self.home)!r})"

    def close(self) -> None:
        """Release the database connection."""
        self._db.close()

    # -- writing ------------------------------------------------------------------------

    def create_invocation(
        self,
        *,
        executor: str,
        deployment_type: str,
        model: str,
        output_dir: str,
        config: dict,
        jobs: Sequence[NewJob],
        invocation_id: str | None = None,
        handle: dict | None = None,
    ) -> InvocationRecord:
        """Record a new invocation and its jobs (all PENDING) in one transaction.

        The record exists before anything is launched, so a crash mid-launch still
        leaves a trace that `status` and `kill` can find. Without `invocation_id` a
        fresh random id is drawn (and redrawn on collision); an explicit id must be
        new, else ValueError. `handle` is the invocation's handle from the first moment
        (a foreground run's pid: `status` must never see the row without it).
        """
        if invocation_id is not None:
            check_invocation_id(invocation_id)
        config_json = _dump_dict(config, "config")
        handle_json = _dump_dict(handle or {}, "invocation handle")
        job_rows = [
            (job.task, job.output_dir, _dump_dict(job.handle, "job handle")) for job in jobs
        ]
        now = time.time()
        with self._db.write() as conn:
            if invocation_id is None:
                inv_id = _fresh_id(conn)
            elif _exists(conn, invocation_id):
                raise ValueError(f"invocation id {invocation_id!r} already exists")
            else:
                inv_id = invocation_id
            conn.execute(
                f"INSERT INTO invocations ({_INV_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (inv_id, now, executor, deployment_type, model, output_dir, config_json, handle_json),
            )
            conn.executemany(
                f"INSERT INTO jobs ({_JOB_COLS}) VALUES (?, ?, ?, 'PENDING', '', ?, ?, ?, ?)",
                [
                    (inv_id, index, task, job_dir, handle, now, now)
                    for index, (task, job_dir, handle) in enumerate(job_rows)
                ],
            )
            return _load_invocation(conn, inv_id)

    def update_job(
        self,
        job_id: str,
        *,
        state: str | None = None,
        detail: str | None = None,
        handle: dict | None = None,
    ) -> JobRecord:
        """Change a job's state/detail and merge `handle` into its stored handle.

        Merging (top-level keys; new values win) lets the launcher and the job itself
        each record what they know without reading first. `job_id` must be exact
        ("<invocation>.<index>"); an unknown state raises ValueError.
        """
        if state is not None and state not in JOB_STATES:
            expected = ", ".join(JOB_STATES)
            raise ValueError(f"invalid job state {state!r}; expected one of {expected}")
        if handle is not None:
            _dump_dict(handle, "job handle")  # fail before taking the write lock
        inv_id, index = split_job_id(job_id.strip().lower())
        if index is None or not self._db.exists():
            raise NotFoundError(f"no job matches {job_id!r}")
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT state, detail, handle FROM jobs WHERE invocation_id = ? AND idx = ?",
                (inv_id, index),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no job matches {job_id!r}")
            # A damaged handle is replaced by what the caller knows now: it was unreadable.
            merged = {**_json_object(row[2], "handle")[0], **(handle or {})}
            conn.execute(
                "UPDATE jobs SET state = ?, detail = ?, handle = ?, updated_at = ?"
                " WHERE invocation_id = ? AND idx = ?",
                (
                    row[0] if state is None else state,
                    row[1] if detail is None else detail,
                    _dump_dict(merged, "job handle"),
                    time.time(),
                    inv_id,
                    index,
                ),
            )
            return _load_job(conn, inv_id, index)

    def update_invocation_handle(self, invocation_id: str, handle: dict) -> InvocationRecord:
        """Merge `handle` into the invocation's backend handles (e.g. a deployment name).

        Recorded as soon as the backend returns it, so `kill` can tear the resource down
        even if the launcher dies right after. `invocation_id` must be exact.
        """
        _dump_dict(handle, "invocation handle")
        inv_id = invocation_id.strip().lower()
        if not self._db.exists():
            raise NotFoundError(f"no invocation matches {invocation_id!r}")
        with self._db.write() as conn:
            row = conn.execute("SELECT handle FROM invocations WHERE id = ?", (inv_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no invocation matches {invocation_id!r}")
            merged = {**_json_object(row[0], "handle")[0], **handle}
            conn.execute(
                "UPDATE invocations SET handle = ? WHERE id = ?",
                (_dump_dict(merged, "invocation handle"), inv_id),
            )
            return _load_invocation(conn, inv_id)

    # -- reading ------------------------------------------------------------------------

    def get(self, id_or_prefix: str) -> InvocationRecord:
        """Return the invocation named by an id, a unique id prefix, or a job id.

        Users type the shortest prefix that works, in any case; a job id
        "<invocation>.<n>" names the invocation that owns that job.
        """
        text = id_or_prefix.strip().lower()
        prefix, index = split_job_id(text)
        with self._db.read() as conn:
            inv_id = _resolve(conn, prefix, id_or_prefix)
            assert conn is not None
            if index is not None and not _job_exists(conn, inv_id, index):
                raise NotFoundError(f"no job matches {id_or_prefix!r}")
            record = _load_invocation(conn, inv_id)
        self._refuse_damaged(record)
        return record

    def get_job(self, job_id_or_prefix: str) -> JobRecord:
        """Return the job named "<invocation id or unique prefix>.<index>"."""
        prefix, index = split_job_id(job_id_or_prefix.strip().lower())
        if index is None:
            raise NotFoundError(
                f"{job_id_or_prefix!r} is not a job id; expected '<invocation>.<index>'"
            )
        with self._db.read() as conn:
            inv_id = _resolve(conn, prefix, job_id_or_prefix)
            assert conn is not None
            if not _job_exists(conn, inv_id, index):
                raise NotFoundError(f"no job matches {job_id_or_prefix!r}")
            record = _load_invocation(conn, inv_id)
        self._refuse_damaged(record)
        return record.jobs[[job.index for job in record.jobs].index(index)]

    def _refuse_damaged(self, record: InvocationRecord) -> None:
        """A command on a damaged record would fail somewhere further on, with a traceback
        or a wrong guess (a missing runner pid reads as "not running"): stop here instead."""
        if record.damaged:
            raise StoreError(
                f"invocation {record.invocation_id} is damaged in the store {self.path}: "
                f"{record.damaged}"
            )

    def list_invocations(
        self,
        *,
        limit: int | None = None,
        executor: str | None = None,
        since: float | None = None,
    ) -> list[InvocationRecord]:
        """Return invocations newest first, optionally only one executor's or recent ones.

        `since` is a unix time; invocations created at or after it are kept. Two
        queries in one snapshot (invocations, then their jobs) keep `ls` fast however
        many jobs there are.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        clauses: list[str] = []
        params: list[str | float] = []
        if executor is not None:
            clauses.append("executor = ?")
            params.append(executor)
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        selection = f"FROM invocations {where} {_NEWEST_FIRST}"
        if limit is not None:
            selection += " LIMIT ?"
            params.append(limit)
        with self._db.read() as conn:
            if conn is None:
                return []
            inv_rows = conn.execute(f"SELECT {_INV_COLS} {selection}", params).fetchall()
            job_rows = conn.execute(
                f"SELECT {_JOB_COLS} FROM jobs WHERE invocation_id IN (SELECT id {selection})"
                " ORDER BY invocation_id, idx",
                params,
            ).fetchall()
        jobs_by_inv: dict[str, list[JobRecord]] = {}
        for row in job_rows:
            jobs_by_inv.setdefault(row[0], []).append(_job_from_row(row))
        return [_invocation_from_row(row, jobs_by_inv.get(row[0], ())) for row in inv_rows]


# -- helpers ------------------------------------------------------------------------------


def _dump_dict(value: dict, what: str) -> str:
    """Serialise a dict to JSON, or raise TypeError naming what it was for."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serialisable: {exc}") from exc


def _fresh_id(conn: sqlite3.Connection) -> str:
    for _ in range(_MAX_ID_ATTEMPTS):
        candidate = new_invocation_id()
        if not _exists(conn, candidate):
            return candidate
    raise StoreError(f"could not draw an unused invocation id after {_MAX_ID_ATTEMPTS} tries")


def _exists(conn: sqlite3.Connection, inv_id: str) -> bool:
    return conn.execute("SELECT 1 FROM invocations WHERE id = ?", (inv_id,)).fetchone() is not None


def _job_exists(conn: sqlite3.Connection, inv_id: str, index: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM jobs WHERE invocation_id = ? AND idx = ?", (inv_id, index)
    ).fetchone()
    return row is not None


def _resolve(conn: sqlite3.Connection | None, prefix: str, original: str) -> str:
    """Return the one invocation id equal to or starting with `prefix` (lowercase).

    An exact match wins even when it is also a prefix of longer ids.
    """
    if conn is None or not prefix:
        raise NotFoundError(f"no invocation matches {original!r}")
    # A range scan uses the unique index; U+10FFFF sorts after any character an id holds.
    rows = conn.execute(
        f"SELECT id FROM invocations WHERE id >= ? AND id < ? || char(1114111) {_NEWEST_FIRST}",
        (prefix, prefix),
    ).fetchall()
    ids = [row[0] for row in rows]
    if prefix in ids:
        return prefix
    if not ids:
        raise NotFoundError(f"no invocation matches {original!r}")
    if len(ids) > 1:
        raise AmbiguousIdError(original, ids)
    return ids[0]


def _load_invocation(conn: sqlite3.Connection, inv_id: str) -> InvocationRecord:
    row = conn.execute(f"SELECT {_INV_COLS} FROM invocations WHERE id = ?", (inv_id,)).fetchone()
    job_rows = conn.execute(
        f"SELECT {_JOB_COLS} FROM jobs WHERE invocation_id = ? ORDER BY idx", (inv_id,)
    ).fetchall()
    return _invocation_from_row(row, [_job_from_row(r) for r in job_rows])


def _load_job(conn: sqlite3.Connection, inv_id: str, index: int) -> JobRecord:
    row = conn.execute(
        f"SELECT {_JOB_COLS} FROM jobs WHERE invocation_id = ? AND idx = ?", (inv_id, index)
    ).fetchone()
    return _job_from_row(row)


def _invocation_from_row(row: tuple, jobs: Sequence[JobRecord]) -> InvocationRecord:
    inv_id, created_at, executor, deployment_type, model, output_dir, config, handle = row
    config, config_damage = _json_object(config, "config")
    handle, handle_damage = _json_object(handle, "handle")
    damage = [
        config_damage,
        handle_damage,
        *(f"job {j.job_id}: {j.damaged}" for j in jobs if j.damaged),
    ]
    return InvocationRecord(
        invocation_id=inv_id,
        created_at=created_at,
        executor=executor,
        deployment_type=deployment_type,
        model=model,
        output_dir=output_dir,
        config=config,
        handle=handle,
        jobs=tuple(jobs),
        damaged="; ".join(what for what in damage if what),
    )


def _job_from_row(row: tuple) -> JobRecord:
    inv_id, index, task, state, detail, output_dir, handle, created_at, updated_at = row
    handle, damage = _json_object(handle, "handle")
    return JobRecord(
        job_id=f"{inv_id}.{index}",
        invocation_id=inv_id,
        index=index,
        task=task,
        state=state,
        detail=detail,
        output_dir=output_dir,
        handle=handle,
        created_at=created_at,
        updated_at=updated_at,
        damaged=damage,
    )


def _json_object(text: object, what: str) -> tuple[dict, str]:
    """A stored JSON-object column, and "" or what is wrong with it (then the value is {}).

    The file is shared with every evalfleet version and open to any SQLite tool, so one
    row may hold anything; reading it must not stop `ls runs` or commands on other rows."""
    if not isinstance(text, str):
        return {}, f"{what} is {'NULL' if text is None else type(text).__name__}, not JSON"
    try:
        value = json.loads(text)
    except ValueError as exc:
        reason = (
            f" ({exc.msg} at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        )
        return {}, f"{what} is not valid JSON{reason}"
    if not isinstance(value, dict):
        return {}, f"{what} is not a JSON object (it is {type(value).__name__})"
    return value, ""
