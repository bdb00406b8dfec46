"""The files a run leaves, and the store: private, and written whole or not at all.

They hold endpoint URLs, model names and answers, so they are kept from other users as
the files of other tools that hold such things are (ssh, gh, docker): every directory
evalfleet creates is 0700 and every file 0600, whatever the umask. Modes are given where
each file is created rather than through a process-wide umask, which children would
inherit: a server the run starts, or a Slurm job (sbatch passes the umask on), would then
make shared model caches unreadable to the rest of a team.

Standard library only: the store uses it, and `evalfleet ls runs` must start fast.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dirs(path: str | Path) -> Path:
    """Create `path` and each missing parent 0700; a directory that exists is left as it is
    (it may be the user's, shared on purpose). Raises OSError as `Path.mkdir` does."""
    path = Path(path)
    missing = []
    current = path
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if not directory.is_dir():  # a file in the way: say so as mkdir would
                raise
    return path


def open_private(path: str | Path, mode: str = "w") -> IO:
    """`open(path, mode)` for "w", "a", "wb" or "ab", creating a missing file 0600 (an
    existing file keeps its mode)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode[0] == "a" else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    try:
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def create_private(path: str | Path) -> Path:
    """Create `path` 0600 if it does not exist (before a library that creates it with the
    umask's mode opens it: SQLite, logging); an existing file keeps its content and mode."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE))
    return Path(path)


def write_private(path: str | Path, content: str | Iterable[str]) -> None:
    """Replace `path` with `content` (text, or lines written one after another), 0600, whole
    or not at all: a temporary file beside it, then a rename. On any failure (a full disk)
    the temporary file is removed and the OSError raised; `path` is then as it was."""
    path = Path(path)
    # The pid keeps two processes writing the same file from sharing a temporary file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left by a process of the same pid that was killed mid-write
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        with os.fdopen(os.open(temporary, flags, PRIVATE_FILE), "w", encoding="utf-8") as out:
            if isinstance(content, str):
                out.write(content)
            else:
                out.writelines(content)
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_problem(path: str | Path, exc: OSError) -> str:
    """What went wrong writing `path`, as one line: "cannot write FILE: no space left on
    device" (the OS's words, lower-case, as the rest of evalfleet's messages)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot write {path}: {reason[:1].lower()}{reason[1:]}"


__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "create_private",
    "make_private_dirs",
    "open_private",
    "write_private",
    "write_problem",
]
