"""The invocation store: every invocation, its jobs and backend handles, in SQLite.

The store lives in `$EVALFLEET_HOME/store.sqlite` (default `~/.local/state/evalfleet`).
It uses only the standard library so that commands which merely read it (`evalfleet ls
runs`) start fast, and WAL + BEGIN IMMEDIATE so that many processes can write at once
without losing updates.
"""

from evalfleet.store._paths import DB_FILENAME, default_home, new_invocation_id
from evalfleet.store._records import JOB_STATES, InvocationRecord, JobRecord, NewJob
from evalfleet.store._schema import SCHEMA_VERSION
from evalfleet.store._store import InvocationStore

__all__ = [
    "DB_FILENAME",
    "JOB_STATES",
    "SCHEMA_VERSION",
    "InvocationRecord",
    "InvocationStore",
    "JobRecord",
    "NewJob",
    "default_home",
    "new_invocation_id",
]
