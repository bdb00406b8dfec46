"""A custom task's data file is read when the run is validated, as its job will read it:
a missing, empty or malformed file is one line naming the file (and line), exit 2, and
nothing recorded. A file that is not UTF-8 is such a line at run time too, never a
traceback (issue 17's probe: a run recorded FAILED with "UnicodeDecodeError: ...")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalfleet.datasets.readers import read_rows
from evalfleet.datasets.sources import Source
from evalfleet.exceptions import ConfigError, DataError
from evalfleet.tasks.custom import CustomTask

GOOD = '{"id": "a", "prompt": "What is 1 plus one?", "answer": "2"}\n'


def _write(path: Path, content: bytes | None) -> Path:
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    return path


# (name, file content (None: a directory; "missing": no file), what the line must say)
CASES = [
    ("missing", "missing", "cannot read {path}: No such file or directory"),
    ("empty", b"", "{path} holds no samples"),
    ("blank lines only", b"\n  \n\n", "{path} holds no samples"),
    ("a directory", None, "{path} is a directory"),
    ("invalid JSON", GOOD.encode() + b'{"prompt": "x", answer: 1}\n', "{path}:2: invalid JSON"),
    ("no answer", GOOD.encode() + b'{"prompt": "x"}\n', "{path}:2: expected an object with 'answer'"),
    ("not an object", b'["prompt", "answer"]\n', "{path}:1: expected an object with 'answer'"),
    ("not UTF-8", GOOD.encode() + b'{"prompt": "caf\xe9", "answer": "x"}\n',
     "{path}:2: not UTF-8 text (byte 0xe9"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_dataset_stops_the_run_before_it_is_recorded(cli, tmp_path, name, content, expected):
    path = tmp_path / "data.jsonl"
    if content != "missing":
        _write(path, content)  # type: ignore[arg-type]
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
target: {{api_endpoint: {{url: "http://127.0.0.1:9/v1", model_id: m}}}}
execution: {{type: local, output_dir: {tmp_path / "results"}}}
evaluation:
  tasks: [{{name: mine, dataset: {{path: {path}}}, scorer: exact_match}}]
"""
    )
    result = cli("run", "--config", str(config))
    assert result.code == 2, (result.code, result.err)
    assert "Traceback" not in result.err
    (line,) = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: evaluation.tasks[0].dataset.path: "), line
    assert expected.format(path=path) in line, line
    listed = cli("ls", "runs", "--json")
    assert json.loads(listed.out) == [], listed.out
    assert not (tmp_path / "results").exists()


def test_limit_samples_bounds_what_is_checked_as_it_bounds_what_runs(cli, tmp_path):
    path = _write(tmp_path / "data.jsonl", GOOD.encode() + b"not json\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
target: {{api_endpoint: {{url: "http://127.0.0.1:9/v1", model_id: m}}}}
execution: {{type: local, output_dir: {tmp_path / "results"}}}
evaluation:
  params: {{limit_samples: 1}}
  tasks: [{{name: mine, dataset: {{path: {path}}}, scorer: exact_match}}]
"""
    )
    result = cli("run", "--config", str(config), "--dry-run")
    assert result.code == 0, result.err


def test_a_non_utf8_dataset_is_one_line_at_run_time(tmp_path):
    path = _write(tmp_path / "data.jsonl", GOOD.encode() * 2 + b'{"prompt": "\xff", "answer": 1}\n')
    task = CustomTask("mine", path=path, scorer="exact_match", endpoint_type="chat")
    with pytest.raises(ConfigError) as caught:
        task.samples(None)
    assert str(caught.value) == (
        f"{path}:3: not UTF-8 text (byte 0xff: invalid start byte); save the file as UTF-8"
    )


def test_a_job_on_a_non_utf8_dataset_fails_with_its_reason(cli, tmp_path):
    """`evalfleet eval --job`, what every backend runs: exit code and failure reason, no
    traceback."""
    path = _write(tmp_path / "data.jsonl", b'{"prompt": "\x93quoted\x94", "answer": "x"}\n')
    out = tmp_path / "job"
    out.mkdir()
    job = out / "job.json"
    job.write_text(
        json.dumps(
            {
                "invocation_id": "feedf00d",
                "job_id": "feedf00d.0",
                "task": "mine",
                "endpoint": {"url": "http://127.0.0.1:9/v1/chat/completions", "model_id": "m"},
                "output_dir": str(out),
                "dataset": {"path": str(path)},
                "scorer": {"name": "exact_match"},
            }
        )
    )
    result = cli("eval", "--job", str(job))
    assert result.code == 2, (result.code, result.err)
    assert "Traceback" not in result.err and "UnicodeDecodeError" not in result.err
    reason = f"{path}:1: not UTF-8 text (byte 0x93: invalid start byte)"
    assert reason in result.err
    assert reason in (out / "logs" / "failure.txt").read_text()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv"])
def test_a_non_utf8_cached_file_is_a_data_error(tmp_path, fmt):
    path = _write(tmp_path / f"data.{fmt}", b'{"question": "caf\xe9"}\n')
    source = Source(
        name="probe", host="hf", repo="o/n", revision="0" * 40, path=f"data.{fmt}",
        format=fmt, columns=("question",),
    )  # fmt: skip
    with pytest.raises(DataError, match=rf"^{path}: not a valid {fmt} file \("):
        read_rows(source, path)
