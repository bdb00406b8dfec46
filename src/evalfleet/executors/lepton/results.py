"""How a Lepton job's results reach the launcher: through the job's own log.

A Lepton job runs in a container whose disk vanishes when it ends, and the launcher can
reach the workspace only through its API. So the job script ends by printing its output
dir (results.json, samples.jsonl, logs/; not the response cache, not job.json) as a
gzipped tar, base64 in lines of `CHUNK` characters between two marker lines; the launcher
reads them back through `GET /logs` and unpacks them into `<output_dir>/<task>/`. The end
marker carries `evalfleet eval`'s exit code (3: some samples failed).
"""

from __future__ import annotations

import base64
import binascii
import io
import shlex
import tarfile
from collections.abc import Iterable
from pathlib import Path

BEGIN = "EVALFLEET-RESULTS-BEGIN"
LINE = "EVALFLEET-RESULTS "
END = "EVALFLEET-RESULTS-END"
CHUNK = 4000


def emit_lines(output_dir: str) -> list[str]:
    """Shell lines that print `output_dir` between the markers (`$status`: the exit code)."""
    out = shlex.quote(output_dir)
    return [
        "set +e",
        f"echo {BEGIN}",
        f"tar -czf - -C {out} --exclude=./cache.sqlite --exclude='./cache.sqlite-*' "
        f"--exclude=./job.json . | base64 -w {CHUNK} | sed 's/^/{LINE}/'",
        f'echo "{END} $status"',
    ]


class ResultsMissing(Exception):
    """The log holds no complete results block."""


def unpack(lines: Iterable[str], dest: Path) -> int:
    """Unpack the last complete results block of a job's log into `dest`; returns the exit
    code it carries. Raises ResultsMissing (with why) if there is none or it is damaged."""
    chunks: list[str] | None = None
    found: tuple[list[str], int] | None = None
    for line in lines:
        if line == BEGIN:
            chunks = []
        elif chunks is not None and line.startswith(LINE):
            chunks.append(line[len(LINE) :].strip())
        elif chunks is not None and line.startswith(END):
            try:
                found = (chunks, int(line[len(END) :].strip() or "1"))
            except ValueError:
                found = (chunks, 1)
            chunks = None
    if found is None:
        raise ResultsMissing("the job's log holds no results (did it end before writing them?)")
    chunks, code = found
    try:
        data = base64.b64decode("".join(chunks), validate=True)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            # Only plain files and dirs inside dest: a log is not trusted to write elsewhere.
            members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
            if hasattr(tarfile, "data_filter"):
                archive.extractall(dest, members=members, filter="data")
            else:  # Python < 3.10.12: the same rule by hand
                root = dest.resolve()
                for member in members:
                    if not (root / member.name).resolve().is_relative_to(root):
                        raise tarfile.TarError(f"{member.name!r} is outside the task dir")
                archive.extractall(dest, members=members)
    except (binascii.Error, tarfile.TarError, OSError) as exc:
        raise ResultsMissing(f"the results in the job's log are damaged: {exc}") from None
    return code
