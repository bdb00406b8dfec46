"""What one endpoint can take, shared by every task of an invocation that runs here.

A server has one capacity. The tasks of an invocation that run in one process (the local
executor runs them all in its own) and target the same endpoint draw from one
`EndpointBudget`: one in-flight limit, so the endpoint sees at most `parallelism` requests
whatever the number of tasks; 429s halve that one limit, for every task at once; and one
`EndpointHealth`, so an endpoint that has stopped answering ends every task early instead
of each task finding out on its own.

The budgets live in a context variable that `shared_budgets()` sets for the duration of a
block: every `EndpointClient` made inside it (a built-in task's, a harness proxy's, a
judge's) takes its limit from there. Outside such a block a client has a budget of its own,
as `evalfleet eval` on one job needs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from evalfleet.engine.limits import AdaptiveLimit

# An endpoint that has answered nothing for this long, while this many attempts in a row
# failed (each already a retryable failure: a 5xx, a malformed 200, a timeout…), is not
# coming back within the run: every request still queued would only wait out its retries
# (~70 s each by default; 9 times the timeout for a hung server).
SILENT_FOR_S = 60.0
FAILED_ATTEMPTS = 16


@dataclass
class EndpointHealth:
    """Whether an endpoint still answers: the time of its last answer and the failed
    attempts since. Once `tripped` holds a reason, every later attempt fails at once."""

    silent_for_s: float = SILENT_FOR_S
    failed_attempts: int = FAILED_ATTEMPTS
    get_time: Callable[[], float] = time.monotonic
    last_answer: float = field(default=0.0)
    streak: int = 0
    tripped: str | None = None

    def __post_init__(self) -> None:
        self.last_answer = self.get_time()

    def answered(self) -> None:
        self.last_answer = self.get_time()
        self.streak = 0

    def attempt_failed(self, reason: str) -> str | None:
        """Record a failed attempt; the reason to stop sending, once it is time to."""
        self.streak += 1
        if self.tripped is None and self.streak >= self.failed_attempts:
            silent = self.get_time() - self.last_answer
            if silent >= self.silent_for_s:
                self.tripped = (
                    f"no answer for {silent:.0f} s, the last {self.streak} attempts all "
                    f"failed; the last: {reason}"
                )
        return self.tripped


@dataclass
class EndpointBudget:
    """The slots and the health of one endpoint, as every client of it in this process
    shares them."""

    limit: AdaptiveLimit
    health: EndpointHealth

    def admit(self, parallelism: int) -> None:
        """A client of up to `parallelism` requests joins: the budget is the largest
        `parallelism` among its clients (a task asking for fewer still sends no more)."""
        self.limit.raise_maximum(parallelism)


class Budgets:
    """The endpoints of one invocation, keyed by origin (scheme, host, port): a chat and a
    completions path on one server share its capacity."""

    def __init__(self, health: Callable[[], EndpointHealth] = EndpointHealth) -> None:
        self._budgets: dict[str, EndpointBudget] = {}
        self._health = health

    def for_url(self, url: str, parallelism: int) -> EndpointBudget:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"
        budget = self._budgets.get(key)
        if budget is None:
            budget = EndpointBudget(AdaptiveLimit(parallelism), self._health())
            self._budgets[key] = budget
        else:
            budget.admit(parallelism)
        return budget


_CURRENT: ContextVar[Budgets | None] = ContextVar("evalfleet_budgets", default=None)


def budget_for(url: str, parallelism: int) -> EndpointBudget:
    """The shared budget of `url`'s endpoint inside `shared_budgets()`, else one of its own."""
    budgets = _CURRENT.get()
    if budgets is None:
        return EndpointBudget(AdaptiveLimit(parallelism), EndpointHealth())
    return budgets.for_url(url, parallelism)


@contextlib.contextmanager
def shared_budgets(budgets: Budgets | None = None) -> Iterator[Budgets]:
    """Clients made in this block (and in tasks it starts) share their endpoints' budgets."""
    budgets = budgets or Budgets()
    token = _CURRENT.set(budgets)
    try:
        yield budgets
    finally:
        _CURRENT.reset(token)
