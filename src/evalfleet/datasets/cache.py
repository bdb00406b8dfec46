"""Download a source once, verify it, keep it: `<cache>/data/<source>/<revision>/<file>`.

The cache directory is `$EVALFLEET_CACHE_DIR`, else `$XDG_CACHE_HOME/evalfleet`, else
`~/.cache/evalfleet`. A file counts as cached only once its `.sha256` companion exists:
the data is written to a temporary file in the same directory, hashed while it streams,
checked, renamed into place, and only then is the companion written — an interrupted or
corrupt download never looks cached. `EVALFLEET_OFFLINE=1` (or `evalfleet --offline`)
forbids the network: a missing file is then an error that names the task, the source
and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evalfleet.datasets.sources import Source
from evalfleet.exceptions import DataError

_CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 60.0


def cache_dir() -> Path:
    explicit = os.environ.get("EVALFLEET_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "evalfleet"


def offline() -> bool:
    return os.environ.get("EVALFLEET_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_path(source: Source) -> Path:
    return cache_dir() / "data" / source.name / source.revision / Path(source.path).name


def _companion(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_cached(source: Source) -> bool:
    path = cached_path(source)
    return path.is_file() and _companion(path).is_file()


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    size: int
    downloaded: bool


def fetch(source: Source, task: str) -> Fetched:
    """The verified local copy of `source`, downloading it first if needed."""
    path = cached_path(source)
    if is_cached(source):
        recorded = _companion(path).read_text(encoding="utf-8").strip()
        actual = _hash_file(path)
        expected = source.sha256 or recorded
        if actual == expected:
            return Fetched(path, actual, path.stat().st_size, downloaded=False)
        # A corrupt copy is dropped and fetched again (or reported, when offline).
        _companion(path).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    if offline():
        raise DataError(
            f"task {task!r}: data {source.label} is not in the cache ({path}) and downloads "
            f"are off (EVALFLEET_OFFLINE); run `evalfleet data pull {task}` on a machine with "
            f"network and copy {cache_dir()} here, or point EVALFLEET_CACHE_DIR at such a copy"
        )
    return _download(source, task, path)


def _download(source: Source, task: str, path: Path) -> Fetched:
    import http.client
    import urllib.error
    import urllib.request

    url = source.url
    digest = hashlib.sha256()
    size = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".part"
        )
    except OSError as exc:
        raise DataError(
            f"task {task!r}: cannot write to the data cache {cache_dir()}: {exc.strerror} "
            "(set EVALFLEET_CACHE_DIR to a writable directory)"
        ) from None
    try:
        with os.fdopen(handle, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "evalfleet"})
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        actual = digest.hexdigest()
        if source.sha256 and actual != source.sha256:
            raise DataError(
                f"task {task!r}: {url} does not match its pinned sha256 (expected "
                f"{source.sha256}, got {actual}); the file was not kept"
            )
        os.replace(temporary, path)
        _write_atomic(_companion(path), actual + "\n")
    except urllib.error.HTTPError as exc:
        raise DataError(
            f"task {task!r}: downloading {url} failed: HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        # ValueError: a mirror override that is not a URL; HTTPException: a cut-off body.
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"task {task!r}: downloading {url} failed: {reason}; with no network, run "
            f"`evalfleet data pull {task}` elsewhere and copy {cache_dir()} here"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return Fetched(path, actual, size, downloaded=True)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
