"""ensure_environment: real venvs built from a tiny lock (one small package from the index)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evalfleet.exceptions import EvalFleetError, HarnessError
from evalfleet.harness import environment as env_module
from evalfleet.harness.environment import (
    MARKER,
    ensure_environment,
    environment_path,
    is_built,
    last_meaningful_line,
    shipped_lock,
)

PACKAGE, VERSION = "six", "1.17.0"
UV = env_module._find_uv()


def tiny_lock(tmp: Path, line: str = f"{PACKAGE}=={VERSION}") -> Path:
    lock = tmp / "lock.txt"
    lock.write_text(f"# a test lock\n{line}\n", encoding="utf-8")
    return lock


def installed_version(venv: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('six'))"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, list[str]]:
    """One pip build for the module: (venv, lock, cache root, the build's log lines).

    The venv's directory already holds a leftover (an interrupted build) beforehand."""
    tmp = tmp_path_factory.mktemp("env")
    lock, root = tiny_lock(tmp), tmp / "cache"
    leftover = environment_path(PACKAGE, VERSION, lock=lock, cache_root=root)
    (leftover / "bin").mkdir(parents=True)
    (leftover / "half-written").write_text("interrupted")
    lines: list[str] = []
    venv = ensure_environment(
        PACKAGE, VERSION, lock=lock, cache_root=root, installer="pip", log=lines.append
    )
    return venv, lock, root, lines


def test_a_build_installs_the_lock_and_replaces_an_interrupted_one(built) -> None:
    venv, lock, root, lines = built
    assert venv == environment_path(PACKAGE, VERSION, lock=lock, cache_root=root)
    assert venv.parent == root and venv.name.startswith(f"{PACKAGE}-{VERSION}-")
    assert installed_version(venv) == VERSION
    assert not (venv / "half-written").exists()
    marker = json.loads((venv / MARKER).read_text())
    assert (marker["package"], marker["installer"], marker["lock"]) == (PACKAGE, "pip", str(lock))
    assert len(lines) == 2 and lines[0].startswith("building the six 1.17.0 environment with pip")
    log = venv.with_name(venv.name + ".log").read_text()
    assert "--no-deps" in log and str(lock) in log  # the lock, not a resolve


def test_a_built_environment_is_reused_without_running_an_installer(built, monkeypatch) -> None:
    venv, lock, root, _ = built
    assert is_built(PACKAGE, VERSION, lock=lock, cache_root=root)
    before = (venv / MARKER).stat().st_mtime_ns

    def no_installer(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"an installer ran: {args}")

    monkeypatch.setattr(env_module.subprocess, "run", no_installer)
    lines: list[str] = []
    again = ensure_environment(PACKAGE, VERSION, lock=lock, cache_root=root, log=lines.append)
    assert again == venv and lines == []
    assert (venv / MARKER).stat().st_mtime_ns == before


def test_the_cache_key_follows_the_lock_text_and_the_interpreter(built, tmp_path) -> None:
    venv, lock, root, _ = built
    other = tmp_path / "other.txt"
    other.write_text(lock.read_text(), encoding="utf-8")
    assert environment_path(PACKAGE, VERSION, lock=other, cache_root=root) == venv
    other.write_text(lock.read_text() + "wheel==0.45.1\n", encoding="utf-8")
    assert environment_path(PACKAGE, VERSION, lock=other, cache_root=root) != venv
    assert not is_built(PACKAGE, VERSION, lock=other, cache_root=root)
    # a venv's python resolves to its base interpreter: the same key
    base = Path(sys.executable).resolve()
    assert environment_path(PACKAGE, VERSION, lock=lock, cache_root=root, python=base) == venv
    # without a lock, `package==version` is what is installed (and keyed)
    unlocked = environment_path(PACKAGE, VERSION, cache_root=root)
    assert unlocked != venv and unlocked.parent == root


def test_concurrent_callers_build_once(tmp_path) -> None:
    lock, root = tiny_lock(tmp_path), tmp_path / "cache"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from evalfleet.harness.environment import ensure_environment
        venv = ensure_environment({PACKAGE!r}, {VERSION!r}, lock=Path({str(lock)!r}),
                                  cache_root=Path({str(root)!r}), log=print)
        print("VENV", venv)
    """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    stdout = "".join(out for out, _ in outputs)
    assert stdout.count("building the six") == 1, stdout
    venvs = {line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith("VENV ")}
    assert len(venvs) == 1
    assert installed_version(Path(venvs.pop())) == VERSION


def test_a_bad_lock_fails_in_one_line_naming_the_package_and_the_log(tmp_path) -> None:
    lock = tiny_lock(tmp_path, "evalfleet-surely-not-a-package-7f3a==1.0")
    root = tmp_path / "cache"
    with pytest.raises(HarnessError) as caught:
        ensure_environment("nvidia-mmath", "26.3", lock=lock, cache_root=root)
    message = str(caught.value)
    assert isinstance(caught.value, EvalFleetError) and "\n" not in message
    assert message.startswith("cannot install nvidia-mmath==26.3: ")
    assert "evalfleet-surely-not-a-package-7f3a" in message  # the installer's own words
    log = Path(message.rsplit("(full log: ", 1)[1].rstrip(")"))
    assert log.is_file() and "evalfleet-surely-not-a-package-7f3a" in log.read_text()
    venv = environment_path("nvidia-mmath", "26.3", lock=lock, cache_root=root)
    assert not venv.exists()  # nothing half-built is left to be mistaken for a venv
    assert not is_built("nvidia-mmath", "26.3", lock=lock, cache_root=root)


@pytest.mark.skipif(UV is None, reason="uv is neither on PATH nor importable")
def test_uv_builds_the_same_lock(tmp_path) -> None:
    lock = tiny_lock(tmp_path)
    venv = ensure_environment(
        PACKAGE, VERSION, lock=lock, cache_root=tmp_path / "cache", installer="uv"
    )
    assert json.loads((venv / MARKER).read_text())["installer"] == "uv"
    assert installed_version(venv) == VERSION


def test_uv_asked_for_but_missing_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(env_module, "_find_uv", lambda: None)
    with pytest.raises(HarnessError, match=r"^cannot install six==1.17.0: uv was asked for"):
        ensure_environment(
            PACKAGE, VERSION, lock=tiny_lock(tmp_path), cache_root=tmp_path, installer="uv"
        )


def test_the_meaningful_line_of_pip_and_uv_failures() -> None:
    pip = """$ python -m pip install --no-deps -r lock.txt
Looking in links: /opt/wheels
ERROR: Could not find a version that satisfies the requirement nope==1.0 (from versions: none)
ERROR: No matching distribution found for nope==1.0
"""
    assert last_meaningful_line(pip) == "No matching distribution found for nope==1.0"
    uv = """$ uv pip install --no-deps -r lock.txt
  \u00d7 No solution found when resolving dependencies:
  ╰─▶ Because nope was not found in the package registry and you require nope==1.0, we can
      conclude that your requirements are unsatisfiable.
  hint: check the spelling
"""
    assert last_meaningful_line(uv) == (
        "Because nope was not found in the package registry and you require nope==1.0, we can "
        "conclude that your requirements are unsatisfiable."
    )
    uv_piped = """Using Python 3.11.7 environment at: /tmp/v
error: No solution found when resolving dependencies
  cause: Because nope was not found in the package registry and you require nope==1.0
"""
    assert last_meaningful_line(uv_piped) == (
        "Because nope was not found in the package registry and you require nope==1.0"
    )
    assert last_meaningful_line("$ cmd\nSegmentation fault\n") == "Segmentation fault"
    assert last_meaningful_line("") == "the installer failed without a message"


def test_shipped_locks_pin_every_line() -> None:
    assert shipped_lock("nvidia-no-such-framework", "26.3") is None
    locks = sorted(env_module.LOCKS_DIR.glob("*.txt"))
    assert locks, "no lock shipped"
    for lock in locks:
        package, _, version = lock.stem.rpartition("-")
        assert shipped_lock(package, version) == lock
        pins = [ln for ln in lock.read_text().splitlines() if ln and not ln.startswith("#")]
        assert all("==" in ln and " @ " not in ln for ln in pins), lock
        names = {ln.split("==")[0].lower().replace("_", "-") for ln in pins}
        assert {package, "nemo-evaluator"} <= names, lock
