"""Child processes that must not outlive the evalfleet process that started them."""

from __future__ import annotations

import contextlib
import signal
import sys


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """For `preexec_fn`, in the child before exec: `signum` when its parent dies, however it
    dies (SIGKILL, the OOM killer), so that nothing it started keeps running unseen.
    Linux only (PR_SET_PDEATHSIG); elsewhere nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signum)  # PR_SET_PDEATHSIG
