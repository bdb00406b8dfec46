"""Results through the job log: the job script's own shell lines in, files out."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from evalfleet.executors.lepton.results import BEGIN, END, LINE, ResultsMissing, emit_lines, unpack

pytestmark = pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")


def _emit(output_dir: Path, status: int = 0) -> list[str]:
    script = "\n".join([f"status={status}", *emit_lines(str(output_dir))])
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


def test_round_trip_keeps_results_and_drops_the_cache(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "logs").mkdir(parents=True)
    (job / "results.json").write_text('{"metrics": {}}')
    samples = "".join(f'{{"id": {i}, "response": "{"x" * 500}"}}\n' for i in range(200))
    (job / "samples.jsonl").write_text(samples)
    (job / "logs" / "eval.log").write_text("done\n")
    (job / "cache.sqlite").write_bytes(b"big cache")
    (job / "job.json").write_text("{}")
    lines = ["some eval output", *_emit(job, status=3), "container exited with code 3"]
    assert lines[1] == BEGIN and lines[-2] == f"{END} 3"
    assert all(len(line) <= len(LINE) + 4000 for line in lines)
    dest = tmp_path / "home"
    assert unpack(lines, dest) == 3
    assert (dest / "samples.jsonl").read_text() == samples
    assert (dest / "results.json").read_text() == '{"metrics": {}}'
    assert (dest / "logs" / "eval.log").read_text() == "done\n"
    assert not (dest / "cache.sqlite").exists() and not (dest / "job.json").exists()


def test_missing_or_damaged_results_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ResultsMissing, match="holds no results"):
        unpack(["just a log", BEGIN, f"{LINE}abcd"], tmp_path)  # never ended
    with pytest.raises(ResultsMissing, match="damaged"):
        unpack([BEGIN, f"{LINE}!!!not base64", f"{END} 0"], tmp_path)


def test_a_log_cannot_write_outside_the_task_dir(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"owned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    encoded = base64.b64encode(buffer.getvalue()).decode()
    dest = tmp_path / "task"
    with pytest.raises(ResultsMissing):
        unpack([BEGIN, LINE + encoded, f"{END} 0"], dest)
    assert not (tmp_path / "escaped.txt").exists()
