"""Where the store lives and how invocation ids look.

Kept apart from the database code so that callers who only need a path or a fresh id
(e.g. to name an output directory before anything is written) import almost nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DB_FILENAME = "store.sqlite"
"""File name of the database inside the evalfleet home directory."""

_ID_PATTERN = re.compile(r"[0-9a-z][0-9a-z_-]{0,63}")


def default_home() -> Path:
    """Return `$EVALFLEET_HOME`, or `~/.local/state/evalfleet` when it is unset or empty.

    State (not config, not cache) belongs under XDG's state directory; the env var lets
    tests and users with several setups keep separate stores.
    """
    env = os.environ.get("EVALFLEET_HOME", "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "state" / "evalfleet"


def new_invocation_id() -> str:
    """Return 8 random lowercase hex characters.

    Short enough to type, random enough (2**32) that collisions are rare; the store
    still checks and retries, so rare is good enough. `secrets` is imported here, not at
    module level, because it pulls in hashlib and read-only commands never need it.
    """
    import secrets

    return secrets.token_hex(4)


def check_invocation_id(invocation_id: str) -> str:
    """Return `invocation_id` if it is a valid id, else raise ValueError.

    Ids appear in directory names and on command lines, and a '.' would make a job id
    "<invocation>.<index>" ambiguous, so only lowercase letters, digits, '-' and '_' are
    allowed.
    """
    if not isinstance(invocation_id, str) or not _ID_PATTERN.fullmatch(invocation_id):
        raise ValueError(
            f"invalid invocation id {invocation_id!r}: use 1-64 lowercase letters, digits,"
            " '-' or '_', starting with a letter or digit"
        )
    return invocation_id


def split_job_id(text: str) -> tuple[str, int | None]:
    """Split "<invocation>.<index>" into its parts; `(text, None)` if it is no job id.

    Invocation ids never contain '.', so the last '.' followed by digits is the only
    possible split.
    """
    head, sep, tail = text.rpartition(".")
    if sep and head and tail.isascii() and tail.isdigit():
        return head, int(tail)
    return text, None
