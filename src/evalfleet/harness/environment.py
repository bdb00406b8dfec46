"""A framework package's virtualenv: built once per package, version, lock and interpreter.

`ensure_environment("nvidia-mmath", "26.3")` returns a venv holding that package, building
it on first use under `<cache_dir()>/harness/<package>-<version>-<key>`, where `key` is a
short hash of what was installed (the lock's text, or `package==version` without one) and of
the base interpreter (a venv built on one Python cannot serve another).

- **What is installed.** A lock shipped in `locks/<package>-<version>.txt` (a `pip freeze` of
  a venv that ran the package end to end, every line `name==version`) is installed with
  `--no-deps`: the same files every time, and no resolver, so a build cannot drift when a
  dependency publishes a new release. Without a lock, `package==version` is resolved.
- **Which installer.** `uv` (on PATH, or the `uv` Python package's binary) when there is one:
  it builds a large venv in seconds from its cache; else `python -m venv` and pip.
- **Built in place, marker last.** A venv cannot be moved once built (its console scripts
  carry the absolute path of its interpreter in their shebang, and frameworks call them by
  name, e.g. `mmath ...`), so it is not built elsewhere and renamed. It is built at its final
  path while holding a file lock (`fcntl`), and counts as built only once its marker file
  exists, written last and atomically. A directory without a marker is an interrupted build:
  the next builder removes it and starts again. Concurrent callers wait on the lock and then
  find the marker, so one build serves them all.
- **Failure.** The installer's output goes to `<venv>.log` beside the venv (kept); the error
  is one line naming the package, the installer's last meaningful line and that log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from evalfleet.datasets.cache import cache_dir
from evalfleet.exceptions import HarnessError

__all__ = [
    "Installer",
    "ensure_environment",
    "environment_path",
    "is_built",
    "last_meaningful_line",
    "shipped_lock",
]

Installer = Literal["auto", "uv", "pip"]

LOCKS_DIR = Path(__file__).with_name("locks")
MARKER = ".evalfleet-built.json"
"""Written last: a venv directory without it is an unfinished build."""
_KEY_CHARS = 12


def shipped_lock(package: str, version: str) -> Path | None:
    """The frozen lock evalfleet ships for this package and version, if any."""
    path = LOCKS_DIR / f"{package}-{version}.txt"
    return path if path.is_file() else None


def environment_path(
    package: str,
    version: str,
    *,
    lock: Path | None = None,
    cache_root: Path | None = None,
    python: str | os.PathLike[str] | None = None,
) -> Path:
    """Where this package's venv lives (built or not): `.../harness/<package>-<version>-<key>`."""
    lock = lock if lock is not None else shipped_lock(package, version)
    wanted = lock.read_text(encoding="utf-8") if lock is not None else f"{package}=={version}\n"
    interpreter = _interpreter(python)
    key = hashlib.sha256(f"{interpreter}\n{wanted}".encode()).hexdigest()[:_KEY_CHARS]
    root = cache_root if cache_root is not None else cache_dir() / "harness"
    return root / f"{package}-{version}-{key}"


def is_built(
    package: str,
    version: str,
    *,
    lock: Path | None = None,
    cache_root: Path | None = None,
    python: str | os.PathLike[str] | None = None,
) -> bool:
    """Whether `ensure_environment` with these arguments would reuse a finished venv
    (cheap: one stat, no subprocess; for `ls tasks`' "installed" / "needs install")."""
    venv = environment_path(package, version, lock=lock, cache_root=cache_root, python=python)
    return (venv / MARKER).is_file()


def ensure_environment(
    package: str,
    version: str,
    *,
    lock: Path | None = None,
    cache_root: Path | None = None,
    python: str | os.PathLike[str] | None = None,
    installer: Installer = "auto",
    log: Callable[[str], None] | None = None,
) -> Path:
    """The venv of `package==version`, built first if needed; returns its directory.

    `lock` overrides the shipped lock (`locks/<package>-<version>.txt`); `python` is the
    base interpreter (default: the one running evalfleet); `installer` forces uv or pip;
    `log` receives a line when a build starts and ends. Raises `HarnessError`.
    """
    lock = lock if lock is not None else shipped_lock(package, version)
    venv = environment_path(package, version, lock=lock, cache_root=cache_root, python=python)
    if (venv / MARKER).is_file():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.with_name(venv.name + ".lock")):
        if (venv / MARKER).is_file():  # another process built it while we waited
            return venv
        _build(package, version, lock, venv, python, installer, log or (lambda _line: None))
    return venv


# --------------------------------------------------------------------------- building


def _build(
    package: str,
    version: str,
    lock: Path | None,
    venv: Path,
    python: str | os.PathLike[str] | None,
    installer: Installer,
    log: Callable[[str], None],
) -> None:
    if venv.exists():
        shutil.rmtree(venv)  # an interrupted build: never trust half a venv
    base = os.fspath(python) if python is not None else sys.executable
    uv = _find_uv() if installer in ("auto", "uv") else None
    if installer == "uv" and uv is None:
        raise HarnessError(f"cannot install {package}=={version}: uv was asked for but not found")
    what = f"lock {lock.name} (--no-deps)" if lock is not None else f"{package}=={version}"
    log(f"building the {package} {version} environment with {'uv' if uv else 'pip'}: {what}")
    started = time.monotonic()
    log_path = venv.with_name(venv.name + ".log")
    steps = (
        _uv_steps(uv, base, venv, package, version, lock)
        if uv
        else _pip_steps(base, venv, package, version, lock)
    )
    with log_path.open("w", encoding="utf-8") as out:
        for command in steps:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            try:
                completed = subprocess.run(
                    command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=_installer_env(), check=False,
                )  # fmt: skip
                code = completed.returncode
            except OSError as exc:
                out.write(f"error: {exc}\n")
                code = -1
            if code != 0:
                out.close()
                shutil.rmtree(venv, ignore_errors=True)
                reason = last_meaningful_line(
                    log_path.read_text(encoding="utf-8", errors="replace")
                )
                raise HarnessError(
                    f"cannot install {package}=={version}: {reason} (full log: {log_path})"
                )
    seconds = time.monotonic() - started
    marker = {
        "package": package,
        "version": version,
        "lock": None if lock is None else str(lock),
        "installer": "uv" if uv else "pip",
        "python": base,
        "seconds": round(seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = venv / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
    tmp.replace(venv / MARKER)
    log(f"built the {package} {version} environment in {seconds:.0f}s: {venv}")


def _uv_steps(
    uv: str, base: str, venv: Path, package: str, version: str, lock: Path | None
) -> list[list[str]]:
    install = [uv, "pip", "install", "--python", str(venv / "bin" / "python")]
    # uv does not read pip's configuration; local wheel folders configured for pip (on
    # this kind of machine: the CPU torch build) must be visible to uv as well.
    for links in os.environ.get("PIP_FIND_LINKS", "").split():
        install += ["--find-links", links]
    install += ["--no-deps", "-r", str(lock)] if lock is not None else [f"{package}=={version}"]
    return [[uv, "venv", "--quiet", "--python", base, str(venv)], install]


def _pip_steps(
    base: str, venv: Path, package: str, version: str, lock: Path | None
) -> list[list[str]]:
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input"]
    pip += ["--no-deps", "-r", str(lock)] if lock is not None else [f"{package}=={version}"]
    return [[base, "-m", "venv", str(venv)], pip]


def _installer_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)  # the caller's venv must not become the target
    env.pop("PYTHONPATH", None)  # nor leak evalfleet's own packages into the build
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def _find_uv() -> str | None:
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    try:
        from uv import find_uv_bin  # the `uv` PyPI package ships the binary
    except ImportError:
        return None
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return None


def _interpreter(python: str | os.PathLike[str] | None) -> str:
    """The base interpreter's identity for the cache key: its resolved path (a venv's
    `python` resolves to the interpreter it was made from, so that is what counts)."""
    path = Path(os.fspath(python) if python is not None else sys.executable)
    if not path.is_absolute():
        found = shutil.which(str(path))
        path = Path(found) if found else path
    return str(path.resolve())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- errors

# uv marks its errors with "\u00d7" (a multiplication sign) and "\u2570\u2500\u25b6" (an arrow)
_ERROR_LINE = re.compile(
    r"^\s*(?:ERROR:|error:|\u00d7|\u2570\u2500\u25b6|Caused by:|cause:)\s*", re.IGNORECASE
)
_NOISE = re.compile(r"^\s*(?:\$ |hint:|note:|WARNING:|\[notice\]|│|help:)")


def last_meaningful_line(output: str) -> str:
    """The line of an installer's output that says what went wrong: the last error line
    (pip's `ERROR: ...`; uv's `error: ...` and its more specific `cause: ...`, or `╰─▶ ...`
    on a terminal), else the last line that is not
    noise (hints, notices, the commands we echoed)."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if _ERROR_LINE.match(line):
            words = [_ERROR_LINE.sub("", line).strip()]
            for more in lines[index + 1 :]:  # uv wraps a long message onto indented lines
                if _ERROR_LINE.match(more) or _NOISE.match(more) or not more.startswith(" "):
                    break
                words.append(more.strip())
            text = " ".join(w for w in words if w)
            if text:
                return text
    for line in reversed(lines):
        if not _NOISE.match(line):
            return line.strip()
    return "the installer failed without a message"
