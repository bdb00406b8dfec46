"""Whether a process recorded in the store (a runner, a task) still runs on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def process_alive(pid: Any) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z"
