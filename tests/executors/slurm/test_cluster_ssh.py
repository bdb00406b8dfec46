"""The Slurm executor over ssh (a real sshd on loopback, the system ssh client), and the
one-line errors a refused submission gives, quoting ssh's or Slurm's own message."""

from __future__ import annotations

import json

import pytest

from evalfleet import api

from .cluster_helpers import (
    active_jobs,
    all_in,
    slurm_config,
    states,
    wait_for,
    wait_no_jobs,
    write_dataset,
)


@pytest.fixture
def fixed_wheel() -> None:
    """The jobs install this evalfleet's real wheel (the bootstrap runs on the cluster)."""


def _ssh_execution(login, ssh_config=None, host=None, local_dir=None) -> str:
    lines = [
        f"  hostname: {host or login.hostname}",
        f"  ssh_config: {ssh_config or login.ssh_config}",
    ]
    if local_dir:
        lines.append(f"  local_output_dir: {local_dir}")
    return "\n".join(lines)


def test_two_tasks_over_ssh_run_to_success_and_results_are_copied_back(
    cli, ssh_login, tmp_path, free_port
) -> None:
    copied = tmp_path / "copied"
    config = slurm_config(
        tmp_path, free_port, execution=_ssh_execution(ssh_login, local_dir=copied)
    )
    result = cli("run", "--config", str(config))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]

    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "SUCCESS"], rows
    assert [row["detail"] for row in rows] == ["accuracy 1.0000 (95% CI 1.000\u20131.000, n=4)"] * 2
    remote = tmp_path / "results" / invocation_id  # the cluster's file system
    for task in ("adds", "more"):
        assert (remote / task / "results.json").is_file()
        local = copied / invocation_id / task
        assert json.loads((local / "results.json").read_text()) == json.loads(
            (remote / task / "results.json").read_text()
        )
        assert (local / "samples.jsonl").is_file() and (local / "logs" / "eval.log").is_file()
    assert (copied / invocation_id / "config.yaml").is_file()
    listed = api.list_runs()
    assert [(r["invocation_id"], r["executor"]) for r in listed] == [(invocation_id, "slurm")]
    lines = cli("logs", invocation_id).out.splitlines()
    assert any(line.startswith("[slurm ") and "all 2 task(s) succeeded" in line for line in lines)
    assert any(line.startswith("[more] ") and "done:" in line for line in lines)
    assert not wait_no_jobs(invocation_id)


def test_an_unreachable_login_node_is_unknown_not_failed(
    cli, ssh_login, tmp_path, free_port
) -> None:
    ssh_config = tmp_path / "ssh_config"
    original = ssh_login.ssh_config.read_text()
    ssh_config.write_text(original)
    config = slurm_config(
        tmp_path, free_port, execution=_ssh_execution(ssh_login, ssh_config=ssh_config)
    )
    result = cli("run", "--config", str(config))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]

    # The login node's address now leads nowhere (a port nobody listens on).
    ssh_config.write_text(
        original.replace(f"  Port {ssh_login.port}\n", f"  Port {ssh_login.refused_port}\n")
    )
    rows = api.status([invocation_id])
    assert states(rows) == ["UNKNOWN", "UNKNOWN"], rows
    assert "Connection refused" in rows[0]["detail"]
    assert "last recorded state: PENDING" in rows[0]["detail"]
    kill = cli("kill", invocation_id)
    assert kill.code == 1 and "Connection refused" in kill.err
    assert active_jobs(invocation_id), "kill must not claim what it could not do"

    ssh_config.write_text(original)  # reachable again: the real states come back
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "SUCCESS"], rows


def _one_error_line(result) -> str:
    assert result.code == 1, (result.out, result.err)
    # The run announces the invocation first; then exactly one error line.
    lines = result.err.strip().splitlines()
    assert lines[0].startswith("invocation ") and len(lines) == 2, result.err
    assert lines[1].startswith("error: "), result.err
    return lines[1]


def test_ssh_refused(cli, ssh_login, tmp_path, free_port) -> None:
    execution = _ssh_execution(ssh_login, host=ssh_login.refused_host)
    result = cli("run", "--config", str(slurm_config(tmp_path, free_port, execution=execution)))
    line = _one_error_line(result)
    assert "ssh: connect to host 127.0.0.1 port" in line and "Connection refused" in line


def test_unknown_host(cli, ssh_login, tmp_path, free_port) -> None:
    execution = _ssh_execution(ssh_login, host="no-such-host.invalid")
    result = cli("run", "--config", str(slurm_config(tmp_path, free_port, execution=execution)))
    line = _one_error_line(result)
    assert "Could not resolve hostname no-such-host.invalid" in line


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_sbatch_rejecting_a_flag(cli, request, tmp_path, free_port, where) -> None:
    execution = "  sbatch_extra_flags: {no_such_flag: true}"
    if where == "ssh":
        execution += "\n" + _ssh_execution(request.getfixturevalue("ssh_login"))
    result = cli("run", "--config", str(slurm_config(tmp_path, free_port, execution=execution)))
    line = _one_error_line(result)
    assert "sbatch: unrecognized option '--no-such-flag'" in line
    invocation_id = api.list_runs(limit=1)[0]["invocation_id"]
    rows = api.status([invocation_id])
    assert states(rows) == ["FAILED", "FAILED"]
    assert "unrecognized option" in rows[0]["detail"]


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_an_account_that_does_not_exist(
    cli, request, slurm_cluster, tmp_path, free_port, where
) -> None:
    if not slurm_cluster.accounting:
        pytest.skip("the test cluster has no accounting (slurmdbd/MariaDB not installed)")
    execution = "  account: no-such-account"
    if where == "ssh":
        execution += "\n" + _ssh_execution(request.getfixturevalue("ssh_login"))
    result = cli("run", "--config", str(slurm_config(tmp_path, free_port, execution=execution)))
    line = _one_error_line(result)
    assert "Invalid account or account/partition combination specified" in line


def test_over_ssh_a_failed_task_says_why_and_its_resume_brings_the_new_results_home(
    cli, ssh_login, tmp_path, free_port
) -> None:
    """A failed task's files are copied back (its reason is shown here); after resume,
    the copy of that failed attempt is replaced by the successful one."""
    copied = tmp_path / "copied"
    config = slurm_config(
        tmp_path, free_port, missing=("more",),
        execution=_ssh_execution(ssh_login, local_dir=copied),
    )  # fmt: skip
    result = cli("run", "--config", str(config))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "FAILED"], rows
    assert rows[1]["detail"].startswith("dataset.path: cannot read "), rows[1]
    local = copied / invocation_id / "more"
    assert (local / "logs" / "exit_code").read_text().strip() == "2"  # its config was wrong

    write_dataset(tmp_path / "data", "more", 4)  # the data is there now
    resumed = cli("resume", invocation_id)
    assert resumed.code == 0, resumed.err
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "SUCCESS"], rows
    assert rows[1]["detail"] == "accuracy 1.0000 (95% CI 1.000\u20131.000, n=4)"
    assert json.loads((local / "results.json").read_text())["metrics"]["accuracy"]["value"] == 1.0
    assert (local / "logs" / "exit_code").read_text().strip() == "0"
    assert not wait_no_jobs(invocation_id)
