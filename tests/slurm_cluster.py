"""A real single-node Slurm cluster (munged + slurmctld + slurmd, and slurmdbd with MariaDB
when installed) and an sshd on loopback, started once per test session.

The daemons come from Debian's packages (`.ci/run` installs them) and are started by
`.ci/slurm/start-local-slurm.sh` in a private state dir on free ports; nothing system-wide
is touched (SLURM_CONF points at the private config). Tests that need them skip with the
reason when the binaries are absent, unless EVALFLEET_REQUIRE_SLURM=1 (set by CI), which
turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / ".ci" / "slurm"
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
ACCOUNTING_BINARIES = ("slurmdbd", "mariadbd", "mariadb-install-db", "sacctmgr")
TEST_ACCOUNT = "evalfleet-ci"
SSH_HOST = "evalfleet-test-login"


@dataclass(frozen=True)
class SlurmCluster:
    state_dir: Path
    conf: Path
    accounting: bool

    def run(self, *argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


@dataclass(frozen=True)
class SshLogin:
    """`execution.hostname` / `ssh_config` that reach this machine through a real sshd."""

    hostname: str
    ssh_config: Path
    port: int
    refused_host: str  # a Host entry whose port nobody listens on
    refused_port: int


def _unavailable(reason: str) -> None:
    if os.environ.get("EVALFLEET_REQUIRE_SLURM") == "1":
        pytest.fail(f"EVALFLEET_REQUIRE_SLURM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def control_path() -> str:
    from evalfleet.executors.slurm.host import control_dir

    return f"{control_dir()}/%C"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    missing = [name for name in SLURM_BINARIES if shutil.which(name) is None]
    if missing:
        _unavailable(
            f"Slurm is not installed (missing {', '.join(missing)}); "
            "apt-get install slurmctld slurmd slurm-client munge"
        )
    if os.geteuid() != 0:
        _unavailable("starting slurmctld/slurmd/munged needs root")
    accounting = all(shutil.which(name) for name in ACCOUNTING_BINARIES)
    # A short path: the munge socket lives under it (unix socket paths are limited).
    state = Path(tempfile.mkdtemp(prefix="efslurm-", dir="/tmp"))
    env = {
        **os.environ,
        "LOCAL_SLURM_NO_INSTALL": "1",
        "LOCAL_SLURM_LINK_ETC": "0",
        "LOCAL_SLURM_CPUS": "8",  # several small jobs at once on a 2-core machine
        "LOCAL_SLURM_ACCOUNTING": "1" if accounting else "0",
        "LOCAL_SLURM_CTLD_PORT": str(free_port()),
        "LOCAL_SLURM_SLURMD_PORT": str(free_port()),
        "LOCAL_SLURM_DBD_PORT": str(free_port()),
        "LOCAL_SLURM_MYSQL_PORT": str(free_port()),
        # Preemption: a job of `urgent` cancels (PREEMPTED) `preemptible` jobs it needs
        # room for; jobs of the default partition are requeued by Slurm instead.
        "LOCAL_SLURM_EXTRA_CONF": (
            "PreemptType=preempt/partition_prio\nPreemptMode=REQUEUE\n"
            "PartitionName=preemptible Nodes=localhost MaxTime=INFINITE State=UP "
            "PriorityTier=1 PreemptMode=CANCEL\n"
            "PartitionName=urgent Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=10"
        ),
    }
    conf = state / "etc" / "slurm.conf"
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        started = subprocess.run(
            ["bash", str(SCRIPTS / "start-local-slurm.sh"), str(state)],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if started.returncode != 0:
            pytest.fail(f"the Slurm cluster did not start:\n{started.stderr}", pytrace=False)
        cluster = SlurmCluster(state, conf, accounting)
        if accounting:
            cluster.run("sacctmgr", "-i", "add", "account", TEST_ACCOUNT)
            cluster.run("sacctmgr", "-i", "add", "user", "root", f"account={TEST_ACCOUNT}")
        yield cluster
    finally:
        subprocess.run(
            ["bash", str(SCRIPTS / "stop-local-slurm.sh"), "--purge", str(state)],
            env=env, capture_output=True, timeout=120,
        )  # fmt: skip
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


@pytest.fixture(scope="session")
def ssh_login(slurm_cluster: SlurmCluster) -> Iterator[SshLogin]:
    """An sshd on 127.0.0.1 that accepts a throwaway key for root, and an ssh client
    config naming it; remote commands see the test cluster's SLURM_CONF."""
    sshd = "/usr/sbin/sshd"
    missing = [n for n in ("ssh", "ssh-keygen") if shutil.which(n) is None]
    if not os.path.exists(sshd):
        missing.append(sshd)
    if missing:
        _unavailable(f"OpenSSH is not installed (missing {', '.join(missing)})")
    directory = Path(tempfile.mkdtemp(prefix="efssh-", dir="/tmp"))
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / key)],
            check=True, capture_output=True,
        )  # fmt: skip
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    port, refused_port = free_port(), free_port()
    # The privilege separation directory sshd insists on.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\n"
        f"HostKey {directory}/host_key\n"
        f"AuthorizedKeysFile {directory}/authorized_keys\n"
        f"PidFile {directory}/sshd.pid\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"SetEnv SLURM_CONF={slurm_cluster.conf}\n"
    )
    client = directory / "ssh_config"
    client.write_text(
        f"Host {SSH_HOST} evalfleet-refused\n"
        "  HostName 127.0.0.1\n  User root\n"
        f"  IdentityFile {directory}/client_key\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {directory}/known_hosts\n  StrictHostKeyChecking accept-new\n"
        f"Host {SSH_HOST}\n  Port {port}\n"
        f"Host evalfleet-refused\n  Port {refused_port}\n"
    )
    with (directory / "sshd.log").open("wb") as log:
        process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(directory / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            probe = subprocess.run(
                ["ssh", "-F", str(client), "-o", "BatchMode=yes", SSH_HOST, "true"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if probe.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = (directory / "sshd.log").read_text(errors="replace")
                pytest.fail(f"sshd did not accept the test key: {probe.stderr}\n{log}")
            time.sleep(0.2)
        yield SshLogin(SSH_HOST, client, port, "evalfleet-refused", refused_port)
    finally:
        # Close the control master the executor's ssh calls share (it would linger a minute).
        subprocess.run(
            ["ssh", "-F", str(client), "-o", f"ControlPath={control_path()}", "-O", "exit",
             SSH_HOST],
            capture_output=True, timeout=30,
        )  # fmt: skip
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Control masters of this session's connections end with the server; the
        # directory holds only throwaway keys.
        shutil.rmtree(directory, ignore_errors=True)
