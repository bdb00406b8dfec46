"""Slurm job states → evalfleet job states, and the probe that reads them in one call.

Pure parsing and decisions: the executor runs `probe_command` on the submit host and hands
the output to `parse_probe`; `task_state` decides each task's state from its chain's Slurm
jobs and the files the batch script leaves (`logs/exit_code`, `logs/slurm_job`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from evalfleet.contract import EXIT_FAILED, EXIT_OK, JobState, exit_detail

# Every state squeue/scontrol/sacct print (Slurm 22-24), by what it means for a chain.
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
RUNNING_STATES = frozenset(
    {"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "RESIZING",
     "STAGE_OUT", "POWER_UP_NODE", "UPDATE_DB"}
)  # fmt: skip
COMPLETED_STATES = frozenset({"COMPLETED"})
CANCELLED_STATES = frozenset({"CANCELLED", "REVOKED"})
# Ended before its work was done, through no fault of the work: the chain continues.
INTERRUPTED_STATES = frozenset({"TIMEOUT", "PREEMPTED"})
FAILED_STATES = frozenset(
    {"FAILED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE", "SPECIAL_EXIT"}
)
ACTIVE_STATES = PENDING_STATES | RUNNING_STATES

_SECTION = "@@evalfleet"


@dataclass
class ChainView:
    """What the submit host says about one batch script's chain of jobs."""

    name: str
    job_ids: list[str] = field(default_factory=list)  # oldest first
    states: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (state, reason)
    links: dict[str, int] = field(default_factory=dict)  # id -> its link number in the chain

    @property
    def latest(self) -> str | None:
        return self.job_ids[-1] if self.job_ids else None

    @property
    def active(self) -> list[str]:
        return [i for i in self.job_ids if self.states.get(i, ("",))[0] in ACTIVE_STATES]

    def state_of(self, job_id: str | None) -> str | None:
        return self.states[job_id][0] if job_id in self.states else None


@dataclass
class TaskFiles:
    exit_code: str | None = None
    slurm_job: str | None = None


@dataclass
class Probe:
    chains: dict[str, ChainView]
    tasks: dict[str, TaskFiles]  # evalfleet job id -> files
    accounting: bool
    squeue_error: str | None = None  # squeue failed: Slurm could not be asked


def slurm_state(text: str) -> str:
    """`CANCELLED by 0` → `CANCELLED`; `TIMEOUT+` → `TIMEOUT`."""
    word = text.strip().split(" ", 1)[0]
    return word.rstrip("+").upper()


def probe_command(
    chain_files: dict[str, str],
    job_names: list[str],
    known_ids: list[str],
    task_logs: dict[str, str],
) -> str:
    """One POSIX shell command printing everything `status` needs, in marked sections.

    `squeue -t all` shows finished jobs for MinJobAge (default 5 min); `sacct` covers older
    ones where the cluster has accounting (without it, it fails and is ignored).
    """
    q = shlex.quote
    lines = []
    for name, path in chain_files.items():
        lines.append(f"echo {q(f'{_SECTION} chain {name}')}; cat {q(path)} 2>/dev/null")
    lines.append(f"echo {_SECTION} squeue")
    # A failing squeue (no controller, not installed) ends the probe with its message.
    lines.append(
        f"if out=$(squeue -h -t all --name={q(','.join(job_names))} -o '%i|%T|%r|%j' 2>&1);"
        f' then printf "%s\\n" "$out";'
        f' else echo {_SECTION} squeue-failed; printf "%s\\n" "$out" | tail -n 1; exit 0; fi'
    )
    if known_ids:
        lines.append(f"echo {_SECTION} sacct")
        lines.append(
            f"sacct -n -P -X -o JobID,State,Reason -j {q(','.join(known_ids))} 2>/dev/null"
            f" || echo {_SECTION} no-accounting"
        )
    for job_id, logs in task_logs.items():
        lines.append(f"echo {q(f'{_SECTION} task {job_id}')}")
        lines.append(f"cat {q(logs + '/exit_code')} 2>/dev/null || echo")
        lines.append(f"cat {q(logs + '/slurm_job')} 2>/dev/null || echo")
    lines.append(f"echo {_SECTION} end")
    return "\n".join(lines)


def parse_probe(text: str, chains: dict[str, list[str]], job_names: dict[str, str]) -> Probe:
    """`chains`: chain name → job ids the store knows; the chain files and squeue (by
    `job_names`, chain name → Slurm job name) add the rest."""
    views = {name: ChainView(name, list(ids)) for name, ids in chains.items()}
    chain_of_name = {job_name: chain for chain, job_name in job_names.items()}
    states: dict[str, tuple[str, str]] = {}
    tasks: dict[str, TaskFiles] = {}
    accounting = True
    squeue_error: str | None = None
    section: list[str] = []
    task_lines: list[str] = []

    def close_task() -> None:
        if section[:1] == ["task"]:
            values = [*task_lines, "", ""]
            tasks[section[1]] = TaskFiles(values[0].strip() or None, values[1].strip() or None)

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(_SECTION):
            close_task()
            section = line[len(_SECTION) :].split()
            task_lines = []
            if section == ["no-accounting"]:
                accounting = False
            continue
        if section == ["squeue-failed"]:
            squeue_error = line or "squeue failed"
            continue
        if not section:
            continue
        if section[0] == "chain" and line:
            job_id, *link = line.split()
            view = views.setdefault(section[1], ChainView(section[1]))
            if job_id != "none":
                if job_id not in view.job_ids:
                    view.job_ids.append(job_id)
                if link and link[0].isdigit():
                    view.links[job_id] = int(link[0])
        elif section[0] in ("squeue", "sacct") and "|" in line:
            job_id, state, *rest = line.split("|")
            if section[0] == "sacct" and job_id in states:
                continue  # squeue is live; sacct may lag behind it
            states[job_id] = (slurm_state(state), rest[0] if rest else "")
            chain = chain_of_name.get(rest[1]) if len(rest) > 1 else None
            if chain in views and job_id not in views[chain].job_ids:
                views[chain].job_ids.append(job_id)  # e.g. a queued next job
        elif section[0] == "task":
            task_lines.append(line)
    close_task()
    for view in views.values():
        view.job_ids.sort(key=_numeric)
        view.states = {i: states[i] for i in view.job_ids if i in states}
    return Probe(views, tasks, accounting, squeue_error)


def next_link(chain: ChainView, walltime_s: int, max_walltime_s: int) -> tuple[int, int] | None:
    """(link number, minutes) for a job continuing a chain whose last job was preempted
    without queueing its successor; None when the chain is active, did not end PREEMPTED,
    or max_walltime is spent (each link counts as a full walltime)."""
    latest = chain.latest
    if latest is None or chain.active or chain.state_of(latest) != "PREEMPTED":
        return None
    link = chain.links.get(latest, 1)
    left = max_walltime_s - link * walltime_s
    if left <= 0:
        return None
    return link + 1, max(1, min(left, walltime_s) // 60)


def _numeric(job_id: str) -> tuple[int, str]:
    head = job_id.split("_")[0].split(".")[0]
    return (int(head) if head.isdigit() else 0, job_id)


def task_state(chain: ChainView, files: TaskFiles) -> tuple[JobState, str] | None:
    """(evalfleet state, detail) of one task, or None when nothing on the host says.

    A task's own exit code decides once it has one; before that, its chain's Slurm jobs do.
    """
    if files.exit_code is not None:
        code = int(files.exit_code) if files.exit_code.isdigit() else EXIT_FAILED
        if code == EXIT_OK:
            return JobState.SUCCESS, ""
        return JobState.FAILED, exit_detail(code, None)
    active = chain.active
    if active:
        running = [i for i in active if chain.state_of(i) in RUNNING_STATES]
        if running and files.slurm_job in running:
            return JobState.RUNNING, f"Slurm job {files.slurm_job}"
        job = active[-1]
        state, reason = chain.states[job]
        if state in RUNNING_STATES:
            return JobState.PENDING, f"Slurm job {job} runs the tasks before it"
        return JobState.PENDING, f"Slurm job {job} {state}" + (
            f" ({reason})" if reason and reason != "None" else ""
        )
    latest = chain.latest
    last_state = chain.state_of(latest)
    if last_state is None:
        return None
    state = last_state
    if state in CANCELLED_STATES:
        return JobState.KILLED, f"Slurm job {latest} {state}"
    if state in INTERRUPTED_STATES:
        return (
            JobState.FAILED,
            f"Slurm job {latest} {state}; max_walltime spent (resume continues it)",
        )
    if state in COMPLETED_STATES:
        return JobState.FAILED, f"Slurm job {latest} ended without running this task"
    return JobState.FAILED, f"Slurm job {latest} {state}; see its slurm-{latest}.out"
