"""Helpers for the Slurm executor tests (fixtures are in conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path


def override(key: str, value: str) -> str:
    """A `-o key=value` whose value may hold any path characters (quoted for Hydra)."""
    return f"{key}='{value}'"


def write_executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (absent, or a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0
