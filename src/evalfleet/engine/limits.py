"""How many requests may be in flight at once: the engine's one concurrency limiter."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class AdaptiveLimit:
    """How many requests may be in flight: halves on throttling, recovers additively.

    Waiters are woken in FIFO order; the common path (a free slot) costs two comparisons.
    """

    def __init__(self, maximum: int, get_time: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._get_time = get_time
        self._last_cut = -1e9

    def try_acquire(self) -> bool:
        """Take a free slot without waiting (and without making a coroutine to do it)."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed to us as we were cancelled
            else:
                self._waiters.remove(future)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def on_success(self) -> None:
        if self.limit < self.maximum:
            self.limit = min(self.maximum, self.limit + 1.0 / max(1.0, self.limit) * 4)
            self._wake()

    def raise_maximum(self, maximum: int) -> None:
        """Allow up to `maximum` at once from now on (never lowers it)."""
        if maximum > self.maximum:
            self.limit += maximum - self.maximum
            self.maximum = maximum
            self._wake()

    def on_throttle(self) -> None:
        now = self._get_time()
        if now - self._last_cut >= 1.0:  # one cut per burst of 429s, not one per request
            self.limit = max(1.0, self.limit / 2)
            self._last_cut = now

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)
