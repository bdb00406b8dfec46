"""Slurm states → evalfleet states, and parsing what the status probe prints (no cluster)."""

from __future__ import annotations

import pytest

from evalfleet.executors.slurm.host import first_message
from evalfleet.executors.slurm.render import walltime_seconds
from evalfleet.executors.slurm.states import (
    ChainView,
    TaskFiles,
    parse_probe,
    probe_command,
    slurm_state,
    task_state,
)

PROBE = """\
@@evalfleet chain evalfleet-ab.sbatch
41 1
42 2 queued
@@evalfleet squeue
42|PENDING|Dependency|evalfleet-ab
43|PENDING|Dependency|evalfleet-ab
99|RUNNING|None|someone-else
@@evalfleet sacct
41|TIMEOUT|None
42|PENDING|None
@@evalfleet task ab.0
0

@@evalfleet task ab.1

41
@@evalfleet end
"""


def test_parse_probe_follows_the_chain_from_its_file_and_squeue() -> None:
    probe = parse_probe(
        PROBE, {"evalfleet-ab.sbatch": ["41"]}, {"evalfleet-ab.sbatch": "evalfleet-ab"}
    )
    (chain,) = probe.chains.values()
    assert chain.job_ids == ["41", "42", "43"]  # 43: found by name only
    assert chain.states == {
        "41": ("TIMEOUT", "None"),
        "42": ("PENDING", "Dependency"),  # squeue wins over sacct
        "43": ("PENDING", "Dependency"),
    }
    assert chain.active == ["42", "43"]
    assert probe.accounting
    assert probe.tasks == {"ab.0": TaskFiles("0", None), "ab.1": TaskFiles(None, "41")}


def test_a_cluster_without_accounting_is_noticed() -> None:
    text = "@@evalfleet squeue\n@@evalfleet sacct\n@@evalfleet no-accounting\n@@evalfleet end\n"
    probe = parse_probe(text, {"s": ["7"]}, {"s": "n"})
    assert not probe.accounting
    assert probe.chains["s"].states == {}
    assert task_state(probe.chains["s"], TaskFiles()) is None  # nothing known: not a guess


def test_probe_command_quotes_every_path() -> None:
    command = probe_command({"c": "/a b/c.jobs"}, ["n1", "n2"], ["5"], {"x.0": "/a b/t/logs"})
    assert "cat '/a b/c.jobs'" in command
    assert "--name=n1,n2" in command
    assert "cat '/a b/t/logs/exit_code'" in command


@pytest.mark.parametrize(
    ("slurm", "expected"),
    [
        ("PENDING", "PENDING"),
        ("REQUEUED", "PENDING"),
        ("CONFIGURING", "PENDING"),  # running, but this task has not started in it
        ("COMPLETED", "FAILED"),  # ended without this task's exit code
        ("FAILED", "FAILED"),
        ("NODE_FAIL", "FAILED"),
        ("OUT_OF_MEMORY", "FAILED"),
        ("CANCELLED", "KILLED"),
        ("TIMEOUT", "FAILED"),  # and no next job: max_walltime spent
        ("PREEMPTED", "FAILED"),
    ],
)
def test_every_slurm_state_maps_to_one_evalfleet_state(slurm: str, expected: str) -> None:
    chain = ChainView("c", ["7"], {"7": (slurm, "None")})
    state, detail = task_state(chain, TaskFiles()) or ("", "")
    assert state == expected
    assert "Slurm job 7" in detail


def test_a_running_job_runs_the_task_that_recorded_it() -> None:
    chain = ChainView("c", ["7", "8"], {"7": ("TIMEOUT", ""), "8": ("RUNNING", "None")})
    assert task_state(chain, TaskFiles(None, "8")) == ("RUNNING", "Slurm job 8")
    # A task that last ran in the timed-out job waits for its turn in the next one.
    assert task_state(chain, TaskFiles(None, "7"))[0] == "PENDING"


def test_a_task_exit_code_decides_once_written() -> None:
    chain = ChainView("c", ["7"], {"7": ("RUNNING", "")})
    assert task_state(chain, TaskFiles("0", "7")) == ("SUCCESS", "")
    assert task_state(chain, TaskFiles("3", "7"))[0] == "FAILED"
    assert "code 2" in task_state(chain, TaskFiles("2", "7"))[1]


def test_timeout_without_a_next_job_says_max_walltime_is_spent() -> None:
    chain = ChainView("c", ["7"], {"7": ("TIMEOUT", "")})
    assert task_state(chain, TaskFiles()) == (
        "FAILED",
        "Slurm job 7 TIMEOUT; max_walltime spent (resume continues it)",
    )


@pytest.mark.parametrize(
    ("text", "state"),
    [("CANCELLED by 0", "CANCELLED"), ("TIMEOUT+", "TIMEOUT"), ("running", "RUNNING")],
)
def test_slurm_state_normalises_sacct_spellings(text: str, state: str) -> None:
    assert slurm_state(text) == state


def test_first_message_picks_slurms_conclusion() -> None:
    err = (
        "sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
        "sbatch: fatal: Could not establish a configuration source\n"
    )
    assert first_message(err) == "sbatch: fatal: Could not establish a configuration source"
    assert first_message(b"sbatch: unrecognized option '--x'\nTry \"sbatch --help\"\n") == (
        "sbatch: unrecognized option '--x'"
    )


@pytest.mark.parametrize(("text", "seconds"), [("00:01:00", 60), ("1-02:00:05", 93605)])
def test_walltime_seconds(text: str, seconds: int) -> None:
    assert walltime_seconds(text) == seconds


def test_a_failing_squeue_is_reported_with_its_message() -> None:
    text = (
        "@@evalfleet squeue\n@@evalfleet squeue-failed\n"
        "squeue: error: Unable to contact slurm controller (connect failure)\n"
    )
    probe = parse_probe(text, {"s": ["7"]}, {"s": "n"})
    assert probe.squeue_error == (
        "squeue: error: Unable to contact slurm controller (connect failure)"
    )
