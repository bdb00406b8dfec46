"""Where Slurm commands run: this machine (`sh -c`) or a login node (the system `ssh`).

Every call has a timeout. Over ssh, one control master per host is shared by all calls
(and kept for a minute), so a `status` or `logs --follow` costs no new handshake. A host
that cannot be reached raises `HostUnreachable`, which callers report as UNKNOWN, never
as a failed job.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from evalfleet.exceptions import ConfigError, DeploymentError

if TYPE_CHECKING:
    from evalfleet.executors.slurm.config import SlurmExecution

COMMAND_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10
_LOGIN_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def control_dir() -> Path:
    """Where the control masters' sockets live: short (a unix socket path is limited to
    ~100 bytes), private to the user."""
    directory = Path(tempfile.gettempdir()) / f"evalfleet-ssh-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


class HostUnreachable(DeploymentError):
    """The submit host did not answer (ssh failed or a command timed out)."""


class SlurmHost:
    """Runs shell commands where `sbatch` is: locally, or on `execution.hostname` over ssh."""

    def __init__(
        self,
        hostname: str | None,
        username: str | None = None,
        ssh_config: str | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> None:
        self.hostname = hostname or "localhost"
        self.username = username
        self.ssh_config = ssh_config
        self.timeout_s = timeout_s

    @classmethod
    def for_execution(cls, execution: SlurmExecution) -> SlurmHost:
        return cls(execution.hostname, execution.username, execution.ssh_config)

    @property
    def remote(self) -> bool:
        return self.hostname != "localhost"

    @property
    def target(self) -> str:
        """`user@host` as ssh takes it (checked: neither part may look like an option)."""
        problems = [
            f"execution.{key}: {value!r} is not a host or user name"
            for key, value in (("hostname", self.hostname), ("username", self.username))
            if value is not None and not _LOGIN_PART.match(value)
        ]
        if problems:
            raise ConfigError(problems)
        return f"{self.username}@{self.hostname}" if self.username else self.hostname

    def ssh_argv(self) -> list[str]:
        """`ssh` with its options, up to (not including) the remote command."""
        argv = ["ssh"]
        if self.ssh_config:
            argv += ["-F", os.path.expanduser(self.ssh_config)]
        options = {
            "BatchMode": "yes",  # never wait for a password prompt nobody sees
            "ConnectTimeout": str(CONNECT_TIMEOUT_S),
            "ServerAliveInterval": "10",
            "ServerAliveCountMax": "3",
            "ControlMaster": "auto",
            "ControlPath": f"{control_dir()}/%C",
            "ControlPersist": "60",
            "LogLevel": "ERROR",  # keeps "Warning: Permanently added..." out of messages
        }
        for name, value in options.items():
            argv += ["-o", f"{name}={value}"]
        return [*argv, "-T", self.target, "--"]

    def argv(self, command: str) -> list[str]:
        return [*self.ssh_argv(), command] if self.remote else ["sh", "-c", command]

    def run(
        self, command: str, stdin: bytes | None = None, timeout_s: float | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a POSIX shell command; the caller reads returncode, stdout and stderr.

        Raises HostUnreachable when ssh itself fails (exit 255) or nothing answers in time.
        """
        timeout = timeout_s or self.timeout_s
        try:
            result = subprocess.run(
                self.argv(command),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HostUnreachable(f"{self.hostname}: no answer within {timeout:g} s") from None
        except OSError as exc:  # no ssh / sh binary
            raise HostUnreachable(f"cannot run {self.argv(command)[0]}: {exc.strerror}") from None
        if self.remote and result.returncode == 255:
            raise HostUnreachable(first_message(result.stderr) or f"ssh to {self.target} failed")
        return result

    def check(self, command: str, what: str, stdin: bytes | None = None) -> bytes:
        """Run `command`; a non-zero exit raises DeploymentError quoting its own message."""
        result = self.run(command, stdin)
        if result.returncode != 0:
            message = first_message(result.stderr) or first_message(result.stdout)
            raise DeploymentError(
                f"{what} failed on {self.hostname} (exit {result.returncode}): "
                f"{message or 'no message'}"
            )
        return result.stdout


def first_message(output: bytes | str) -> str:
    """The line of a tool's output that explains a failure: the last one that says
    `error` or `fatal` (Slurm's tools end with the conclusion), else the first one."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or "fatal" in line.lower():
            return line
    return lines[0] if lines else ""
