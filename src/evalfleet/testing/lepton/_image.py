"""The emulator's job "image": a Python environment with evalfleet's dependencies and pip,
but not evalfleet, so a job runs only the evalfleet its spec ships.

The image is a virtualenv built once (under a file lock) in `<cache>/lepton-emulator/`,
keyed by the interpreter and the pinned dependency closure: the versions installed next to
the running evalfleet, so uv installs them from its cache without the network when it can.
Each job then gets a container of its own (`job_container`): a small virtualenv whose
site-packages sees the image's through a `.pth` file, so what the job installs (the
shipped wheel) lands in its own container and never in the image.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

from evalfleet.datasets.cache import cache_dir

# What the emulator's tests run: the built-in tasks' `code` extra (HumanEval) with the core.
DEFAULT_EXTRAS = ("code",)
READY = ".evalfleet-image-ready"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_pins(extras: Iterable[str] = DEFAULT_EXTRAS) -> list[str]:
    """`name==version` of every distribution evalfleet (with `extras`) needs, as installed
    here, evalfleet excluded; plus pip, which the job's install step runs."""
    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [("evalfleet", frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        dist = metadata.distribution(name)
        if _canonical(name) != "evalfleet":
            pins[_canonical(name)] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({"extra": extra}) for extra in (wanted or {""})
            ):
                continue
            todo.append((requirement.name, frozenset(requirement.extras)))
    pins["pip"] = metadata.version("pip")
    return sorted(f"{name}=={version}" for name, version in pins.items())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _uv() -> list[str] | None:
    try:
        import uv  # noqa: F401

        return [sys.executable, "-m", "uv"]
    except ImportError:
        found = shutil.which("uv")
        return [found] if found else None


def job_image(extras: Iterable[str] = DEFAULT_EXTRAS) -> Path:
    """The image's interpreter (built on first use); raises RuntimeError if it cannot be."""
    pins = dependency_pins(extras)
    key = hashlib.sha256("\n".join([sys.version, *pins]).encode()).hexdigest()[:12]
    root = cache_dir() / "lepton-emulator" / f"image-{key}"
    python = root / "bin" / "python"
    if (root / READY).is_file():
        return python
    with _locked(root.with_name(root.name + ".lock")):
        if (root / READY).is_file():
            return python
        shutil.rmtree(root, ignore_errors=True)
        _build(root, python, pins)
        (root / READY).write_text("\n".join(pins) + "\n")
    return python


def _build(root: Path, python: Path, pins: list[str]) -> None:
    uv = _uv()
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    try:
        if uv is not None:
            run = [*uv, "pip", "install", "--quiet", "--python", str(python), *pins]
            subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(root)],
                           check=True, env=env, capture_output=True)  # fmt: skip
            offline = subprocess.run([*run[:3], "--offline", *run[3:]], env=env,
                                     capture_output=True, check=False)  # fmt: skip
            if offline.returncode != 0:  # something not in uv's cache: fetch it
                subprocess.run(run, check=True, env=env, capture_output=True)
        else:
            subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, env=env,
                           capture_output=True)  # fmt: skip
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins],
                           check=True, env=env, capture_output=True)  # fmt: skip
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise RuntimeError(
            f"cannot build the emulator's job image in {root}: {detail[-1] if detail else exc}"
        ) from None


@functools.lru_cache(maxsize=4)
def _site_packages(python: Path) -> tuple[str, str]:
    """(purelib relative to the environment's prefix, absolute purelib) of `python`."""
    code = "import sys, sysconfig; p = sysconfig.get_path('purelib'); print(p); print(sys.prefix)"
    lines = subprocess.run([str(python), "-c", code], check=True, capture_output=True,
                           text=True).stdout.splitlines()  # fmt: skip
    return os.path.relpath(lines[0], lines[1]), lines[0]


def job_container(image_python: Path, where: Path) -> Path:
    """A fresh environment for one job at `where`, seeing the image's packages (read only:
    installs go to its own site-packages); returns its bin dir."""
    subprocess.run([str(image_python), "-m", "venv", "--without-pip", str(where)], check=True,
                   capture_output=True)  # fmt: skip
    relative, image_lib = _site_packages(image_python)
    (where / relative / "_emulator_image.pth").write_text(image_lib + "\n")
    return where / "bin"
