"""The wheel of the running evalfleet, so that a job runs exactly the code that planned it.

evalfleet is on no package index, so a backend ships this wheel with its jobs (Lepton in
the job spec, Slurm next to the batch script) and the job installs it. The wheel is
written straight from the imported package's files (an editable install and an installed
wheel alike; no build backend) plus a dist-info made from the installed distribution's
metadata (its Requires-Dist, so the job's pip brings the dependencies from its usual index).

Its version is the package's with a local label carrying a hash of the content
(`0.1.0+sha3f2a9c0d1e4b`): a job can check that the evalfleet it imports is the planner's.
The zip is deterministic (sorted members, fixed timestamps and modes), so the same files
always give the same bytes and sha256; it is kept in `<cache>/wheels/`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import evalfleet
from evalfleet.exceptions import EvalFleetError

DIST = "evalfleet"
# The local version label's prefix: the rest is the first 12 hex digits of the content hash.
LABEL = "sha"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_FALLBACK_ENTRY_POINTS = "[console_scripts]\nevalfleet = evalfleet.cli.main:entry\n"
# `python3 -c VERSION_CHECK <version>`, run by a job after installing the wheel: prints which
# evalfleet that interpreter imports, and fails unless it is the planner's.
VERSION_CHECK = (
    'import sys, importlib.metadata as m, evalfleet; v = m.version("evalfleet"); '
    'print(f"evalfleet: running evalfleet {v} from {evalfleet.__file__}", flush=True); '
    "sys.exit(0 if v == sys.argv[1] else "
    'f"evalfleet: installed evalfleet {v}, but the plan was made with {sys.argv[1]}")'
)


class WheelError(EvalFleetError):
    """The running evalfleet cannot be packed (no distribution metadata, unreadable file)."""


@dataclass(frozen=True)
class Wheel:
    """One built wheel: its file name, version, sha256 and bytes."""

    filename: str
    version: str
    sha256: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    def describe(self) -> dict[str, Any]:
        """What a dry run shows of it."""
        return {
            "file": self.filename,
            "version": self.version,
            "sha256": self.sha256,
            "bytes": self.size,
        }

    def base64_chunks(self, chunk_chars: int) -> list[str]:
        """The wheel in base64, cut into strings of at most `chunk_chars` characters."""
        text = base64.b64encode(self.data).decode("ascii")
        return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)] or [""]

    def chunk_count(self, chunk_chars: int) -> int:
        return max(1, -(-(4 * -(-self.size // 3)) // chunk_chars))

    def path(self) -> Path:
        """The wheel as a file in `<cache>/wheels/` (written once, atomically)."""
        target = wheels_dir() / self.filename
        if target.is_file() and target.stat().st_size == self.size:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".whl")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target


def wheels_dir() -> Path:
    from evalfleet.datasets.cache import cache_dir

    return cache_dir() / "wheels"


@functools.lru_cache(maxsize=1)
def own_wheel() -> Wheel:
    """The running evalfleet's wheel: from the cache when it holds this content's wheel,
    else built in memory (`Wheel.path()` writes it). Raises WheelError."""
    package = Path(evalfleet.__file__).resolve().parent
    files = package_files(package)
    dist_info = _metadata_files()
    digest = hashlib.sha256()
    for name, data in [*files, *sorted(dist_info.items())]:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    base = evalfleet.__version__.split("+", 1)[0]
    version = f"{base}+{LABEL}{digest.hexdigest()[:12]}"
    filename = f"{DIST}-{version}-py3-none-any.whl"
    cached = wheels_dir() / filename
    data = cached.read_bytes() if cached.is_file() else _zip(files, dist_info, version)
    return Wheel(filename, version, hashlib.sha256(data).hexdigest(), data)


def package_files(package: Path) -> list[tuple[str, bytes]]:
    """(path inside the wheel, bytes) of every file of the package, sorted; no bytecode."""
    found = []
    for root, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in names:
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            path = Path(root) / name
            relative = path.relative_to(package.parent).as_posix()
            try:
                found.append((relative, path.read_bytes()))
            except OSError as exc:
                raise WheelError(f"cannot pack evalfleet: {path}: {exc.strerror}") from None
    return sorted(found)


def _metadata_files() -> dict[str, bytes]:
    """METADATA (without its version, filled in by _zip) and entry_points.txt, from the
    installed distribution."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise WheelError(
            "cannot pack evalfleet for the jobs: it has no installed distribution metadata "
            "(install it, e.g. `pip install -e .`, rather than putting src/ on PYTHONPATH)"
        ) from None
    meta = dist.metadata
    lines = ["Metadata-Version: 2.1", f"Name: {DIST}"]
    for key in ("Summary", "License-Expression", "License", "Requires-Python"):
        value = (meta.get_all(key) or [None])[0]
        if value:
            lines.append(f"{key}: {value}")
    for key in ("Requires-Dist", "Provides-Extra"):
        lines += [f"{key}: {value}" for value in meta.get_all(key) or []]
    entry_points = dist.read_text("entry_points.txt") or _FALLBACK_ENTRY_POINTS
    return {
        "METADATA": ("\n".join(lines) + "\n").encode(),
        "entry_points.txt": entry_points.encode(),
    }


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _zip(files: list[tuple[str, bytes]], dist_info: dict[str, bytes], version: str) -> bytes:
    info_dir = f"{DIST}-{version}.dist-info"
    head, _, rest = dist_info["METADATA"].decode().partition("\n")
    name_line, _, rest = rest.partition("\n")
    meta = f"{head}\n{name_line}\nVersion: {version}\n{rest}".encode()
    wheel = (
        b"Wheel-Version: 1.0\nGenerator: evalfleet (executors/wheel.py)\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    members = [
        *files,
        (f"{info_dir}/METADATA", meta),
        (f"{info_dir}/WHEEL", wheel),
        (f"{info_dir}/entry_points.txt", dist_info["entry_points.txt"]),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in members)
    members.append((f"{info_dir}/RECORD", (record + f"{info_dir}/RECORD,,\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3  # unix, so that the mode below is read
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()
