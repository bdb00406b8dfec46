"""The environment a job sees, when several jobs run in one process.

`evalfleet eval` runs one job in a process of its own, whose environment is the job's. The
local executor runs all of an invocation's jobs in its own process, side by side, and each
has its own variables (`evaluation.env_vars`, a task's `env_vars`, what its `pre_cmd`
exported): they live in a context variable that each job's asyncio task sets, never in
`os.environ`, which they share. Whatever a job reads from its environment (the endpoint's
API key, the judge's, a harness's variables) is read through `job_environ()`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("evalfleet_job_environ", default=None)


def job_environ() -> Mapping[str, str]:
    """The running job's environment: its own mapping, else this process's."""
    environ = _ENVIRON.get()
    return os.environ if environ is None else environ


@contextlib.contextmanager
def use_job_environ(environ: Mapping[str, str]) -> Iterator[None]:
    """Within this block (and the tasks it starts), the job's environment is `environ`."""
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)
