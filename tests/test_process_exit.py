"""The console entry ends the process without the interpreter's teardown (`os._exit`, after
the exit handlers): nothing written may be lost and the exit code must be the command's."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def _evalfleet(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalfleet", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


def test_a_long_output_reaches_a_pipe_whole():
    done = _evalfleet("ls", "tasks", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)  # cut short, this would not parse
    assert len(done.stdout) > 10_000 and any("humaneval" in row["name"] for row in rows)


def test_the_exit_code_and_message_of_a_refused_command_survive(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluation: {tasks: [{name: no_such_task_anywhere}]}\n")
    done = _evalfleet("run", "--config", str(bad), "--dry-run")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_exit_handlers_still_run(tmp_path):
    """What registers with atexit (logging's flush, weakref finalizers such as a
    TemporaryDirectory's cleanup) runs before the process ends."""
    marker = tmp_path / "ran"
    script = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "from evalfleet.cli.main import entry\n"
        "sys.argv = ['evalfleet', '--version']\n"
        "entry()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and "version" in done.stdout
    assert marker.read_text() == "yes"


def test_a_reader_that_stops_early_gets_no_traceback():
    reader = subprocess.Popen(
        [sys.executable, "-m", "evalfleet", "ls", "tasks", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.read(10)
    reader.stdout.close()  # as `| head -c 10` does
    stderr = reader.stderr.read().decode()
    reader.stderr.close()
    reader.wait(timeout=60)
    assert "Traceback" not in stderr


def test_the_command_runs_with_rare_garbage_collection():
    """A command's imports allocate hundreds of thousands of objects that live on: the
    console entry makes the collector pass over them every 50,000 allocations, not 700,
    before the command (and its imports) start."""
    script = (
        "import gc, sys\n"
        "from evalfleet.cli import main\n"
        "seen = []\n"
        "main.main = lambda argv=None: seen.append(gc.get_threshold()) or 0\n"
        "sys.argv = ['evalfleet', '--version']\n"
        "import atexit; atexit.register(lambda: print(seen))\n"
        "main.entry()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(50000, 20, 10)]"
