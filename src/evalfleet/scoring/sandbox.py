"""Run untrusted generated code: a fresh temporary directory, resource limits, a wall-clock
timeout, and the whole process group killed when it ends.

It is a guard against accidents (infinite loops, memory blow-ups, stray files, forks left
behind), not a security boundary: run evaluations of untrusted models in a container or VM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

MEMORY_BYTES = 2 * 1024**3
MAX_FILE_BYTES = 64 * 1024**2
MAX_OPEN_FILES = 256
MAX_PROCESSES = 64


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # passed | failed | timeout
    detail: str = ""


# The child limits itself before running the program: preexec_fn is not safe next to
# threads, and scores are computed in a thread pool.
_BOOTSTRAP = """
import os, resource, sys
def cap(kind, value):
    soft, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))
cap(resource.RLIMIT_AS, {memory})
cap(resource.RLIMIT_CPU, {cpu})
cap(resource.RLIMIT_FSIZE, {fsize})
cap(resource.RLIMIT_NOFILE, {nofile})
if os.getuid() != 0:  # root ignores RLIMIT_NPROC; the process-group kill still applies
    cap(resource.RLIMIT_NPROC, {nproc})
path = sys.argv[1]
sys.argv = [path]
code = compile(open(path, encoding="utf-8").read(), path, "exec")
exec(code, {{"__name__": "__main__", "__file__": path}})
"""


def run_python(program: str, timeout_s: float = 10.0) -> Outcome:
    """Run `program` with `python -I` in a scratch directory; passed means exit code 0."""
    with tempfile.TemporaryDirectory(prefix="evalfleet-sandbox-") as scratch:
        path = os.path.join(scratch, "program.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(program)
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "PYTHONHASHSEED": "0"}
        bootstrap = _BOOTSTRAP.format(
            memory=MEMORY_BYTES, cpu=int(timeout_s) + 1, fsize=MAX_FILE_BYTES,
            nofile=MAX_OPEN_FILES, nproc=MAX_PROCESSES,
        )  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", bootstrap, path],
            cwd=scratch,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()  # reap it and close its pipe
            return Outcome(False, "timeout", f"no result within {timeout_s:g} s")
        finally:
            _kill_group(process)  # children it left behind go too
        if process.returncode == 0:
            return Outcome(True, "passed")
        last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [
            f"exit code {process.returncode}"
        ]
        return Outcome(False, "failed", last[0][:200])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        process.wait()
