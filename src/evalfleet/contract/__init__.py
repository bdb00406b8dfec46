"""The job contract: what the planner makes, every executor runs, the engine reads and
the store records. One definition of each, used everywhere:

- `JobState`: the states a job is recorded and shown in;
- `Job` and `Invocation`: what the planner made of a RunConfig;
- `JobStatus`: one row of `evalfleet status`;
- the exit codes of `evalfleet eval` and what each means to a user (`exit_detail`);
- the failure reason a job leaves in `logs/failure.txt` (`write_failure`, `read_failure`),
  so that the one line the user saw survives the terminal;
- `headline`: the one-line score of a finished job.

The job spec itself (`job.json`) is `contract.spec.JobSpec` (pydantic, imported only by
those that read or write it). This module uses only the standard library: the store and
`evalfleet ls runs` import it.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig


JSON = dict[str, Any]
"""JSON-able data a backend defines itself: a plan, a store handle, a job spec."""


class JobState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    KILLED = "KILLED"
    UNKNOWN = "UNKNOWN"  # the backend did not answer: never shown as running or failed

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILED, JobState.KILLED)

    @property
    def is_open(self) -> bool:
        """Not ended yet: the job may still run (or be started by its runner)."""
        return self in (JobState.PENDING, JobState.RUNNING)


JOB_STATES: tuple[str, ...] = tuple(state.value for state in JobState)
OPEN_STATES = frozenset({JobState.PENDING.value, JobState.RUNNING.value})
# An invocation whose jobs all ended in these, without a kill, is over: auto-export runs.
ENDED_STATES = frozenset({JobState.SUCCESS.value, JobState.FAILED.value})
# A job in these did not succeed and its detail says why.
FAILED_STATES = frozenset({JobState.FAILED.value, JobState.KILLED.value})


@dataclass(frozen=True)
class Job:
    index: int
    job_id: str  # "<invocation_id>.<index>"
    task: str
    endpoint_type: str  # chat | completions
    output_dir: str  # where the job writes, as the job itself sees it
    spec: dict[str, Any]  # the content of job.json

    @property
    def job_file(self) -> str:
        return f"{self.output_dir}/job.json"


@dataclass(frozen=True)
class Invocation:
    invocation_id: str
    config: RunConfig
    output_dir: str  # <execution.output_dir>/<invocation_id>, as the backend sees it
    jobs: tuple[Job, ...]

    @property
    def model(self) -> str:
        return str(self.jobs[0].spec["endpoint"]["model_id"]) if self.jobs else ""


@dataclass(frozen=True)
class JobStatus:
    invocation_id: str
    job_id: str
    task: str
    state: JobState
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "invocation_id": self.invocation_id,
            "job_id": self.job_id,
            "task": self.task,
            "state": self.state.value,
            "detail": self.detail,
        }


# ----------------------------------------------------------------------------- exit codes

EXIT_OK = 0
EXIT_FAILED = 1  # stopped before the end (answers so far are cached)
EXIT_CONFIG = 2  # the job file or the command was wrong
EXIT_SAMPLE_ERRORS = 3  # results written; some samples failed after their retries


def exit_detail(code: int, job_dir: str | None, reason: str | None = None) -> str:
    """What an ended `evalfleet eval` means, in one line; `reason` is the failure line the
    job left (`read_failure`), which says more than any exit code."""
    if code == EXIT_OK:
        return ""
    if code == EXIT_SAMPLE_ERRORS:
        return "some samples failed after their retries (see samples.jsonl); resume retries them"
    if reason:
        return reason
    where = f"{job_dir}/logs/eval.log" if job_dir else "its logs/eval.log"
    return f"evalfleet eval exited with code {code}; see {where}"


# ----------------------------------------------------------------------------- failure reason

FAILURE_FILE = "logs/failure.txt"


def write_failure(job_dir: str | Path, reason: str) -> None:
    """Keep the one line that says why a job failed (best effort: a job whose disk is
    gone still fails with its exit code)."""
    from evalfleet.contract.files import make_private_dirs, write_private

    path = Path(job_dir) / FAILURE_FILE
    with contextlib.suppress(OSError):
        write_private(make_private_dirs(path.parent) / path.name, reason.strip() + "\n")


def clear_failure(job_dir: str | Path) -> None:
    with contextlib.suppress(OSError):
        (Path(job_dir) / FAILURE_FILE).unlink()


def read_failure(job_dir: str | Path) -> str | None:
    try:
        text = (Path(job_dir) / FAILURE_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text.strip().splitlines()[0] if text.strip() else None


# ----------------------------------------------------------------------------- results


# A sample's metadata that samples.jsonl carries (under "metadata"), for browsing by group:
# the MMLU subject, the MGSM language, the MATH level... Bulky metadata (tests, choices)
# stays out.
SAMPLE_GROUP_FIELDS = ("subset", "language", "category", "subject", "group")


def job_json_base64(spec: JSON) -> str:
    """A job.json as one base64 line, as a job script carries it (`base64 -d` writes it
    back); the dry run recognises it by this same encoding to show it decoded."""
    return base64.b64encode(json.dumps(spec, sort_keys=True).encode()).decode("ascii")


def read_results(job_dir: str | Path) -> dict[str, Any] | None:
    """A finished job's results.json; None when it is missing or not a JSON object."""
    try:
        results = json.loads((Path(job_dir) / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


def headline(job_dir: str | Path) -> str:
    """A finished job's headline metric from its results.json, as `headline_text` shows it
    without the counts; "" if there is none."""
    results = read_results(job_dir)
    return "" if results is None else headline_text(results, counts=False)


_EN_DASH = "\u2013"  # between an interval's bounds (escaped: ruff flags the literal)


def headline_text(results: dict[str, Any], *, counts: bool = True) -> str:
    """`pass@1 0.4000 (95% CI 0.12\u20130.68, n=10, errors 0, truncated 3)` from a
    results.json: what the interval is, said, never a bare `±`. Without `counts`, only n."""
    name = str(results.get("headline_metric") or "")
    metric = (results.get("metrics") or {}).get(name)
    tallies = results.get("counts") or {}
    if not isinstance(metric, dict) or not isinstance(metric.get("value"), (int, float)):
        return f"{name} n/a (errors {tallies.get('errors', '?')})" if counts else ""
    parts = []
    ci95, stderr = metric.get("ci95"), metric.get("stderr")
    if (
        isinstance(ci95, list)
        and len(ci95) == 2
        and all(isinstance(bound, (int, float)) for bound in ci95)
    ):
        digits = 2 if ci95[1] - ci95[0] >= 0.1 else 3
        parts.append(f"95% CI {ci95[0]:.{digits}f}{_EN_DASH}{ci95[1]:.{digits}f}")
    elif isinstance(stderr, (int, float)):
        parts.append(f"\u00b1 {stderr:.4f} std. error")
    # A framework package's run counts responses; it does not say how many samples.
    n = tallies.get("scored_samples", tallies.get("responses", metric.get("n")))
    if n is not None:
        parts.append(f"n={n}")
    if counts:
        parts.append(f"errors {tallies.get('errors', 0)}")
        if tallies.get("truncated") is not None:
            parts.append(f"truncated {tallies['truncated']}")
    shown = f" ({', '.join(parts)})" if parts else ""
    return f"{name} {metric['value']:.4f}{shown}"


__all__ = [
    "ENDED_STATES",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SAMPLE_ERRORS",
    "FAILED_STATES",
    "FAILURE_FILE",
    "JOB_STATES",
    "JSON",
    "OPEN_STATES",
    "SAMPLE_GROUP_FIELDS",
    "Invocation",
    "Job",
    "JobState",
    "JobStatus",
    "clear_failure",
    "exit_detail",
    "headline",
    "headline_text",
    "job_json_base64",
    "read_failure",
    "read_results",
    "write_failure",
]
