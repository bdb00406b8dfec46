"""Custom tasks read the user's JSONL exactly as `json.loads` would, and name the bad line."""

from __future__ import annotations

import json

import pytest

from evalfleet.exceptions import ConfigError
from evalfleet.tasks.base import Sample
from evalfleet.tasks.custom import CustomTask, _load_line


@pytest.mark.parametrize(
    "line",
    [
        '{"prompt": "p", "answer": 1}',
        '  {"prompt": "p", "answer": 1}',  # leading whitespace: raw_decode alone refuses it
        '{"prompt": "p", "answer": 1}  \t\r',
        '{"prompt": "caf\\u00e9 \\"q\\"", "answer": [1, 2.5, null]}',
        '"just a string"',
    ],
)
def test_lines_read_as_json_loads_reads_them(line):
    assert _load_line(line) == json.loads(line)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "p", "answer": 1} {"x": 2}', "Extra data"),
        ('{"prompt": "p", "answer": 1}}', "Extra data"),
        ('{"prompt": "p", answer: 1}', "Expecting property name enclosed in double quotes"),
        ("  {oops", "Expecting property name enclosed in double quotes"),
    ],
)
def test_a_bad_line_is_named_with_json_loads_own_reason(tmp_path, line, message):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "fine", "answer": "a"}\n' + line + "\n")
    task = CustomTask("mine", path=data, scorer="exact_match", endpoint_type="chat")
    with pytest.raises(ConfigError) as caught:
        task.samples(None)
    assert str(caught.value) == f"{data}:2: invalid JSON: {message}"


def test_prompts_and_messages_become_samples(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(
        '{"id": "a", "prompt": "2+2?", "answer": "4"}\n\n'
        '{"messages": [{"role": "user", "content": "hi"}], "answer": "x"}\n'
    )
    first, second = CustomTask("mine", path=data, scorer="contains", endpoint_type="chat").samples(
        None
    )
    assert (first.id, first.messages, first.target) == (
        "a", ({"role": "user", "content": "2+2?"},), "4",
    )  # fmt: skip
    assert (second.id, second.messages) == ("3", ({"role": "user", "content": "hi"},))


def test_the_prompt_shown_in_samples_jsonl_names_each_role():
    one = Sample("1", "x", messages=({"role": "user", "content": "2+2?"},))
    two = Sample(
        "2",
        "x",
        messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}),
    )
    assert one.shown_prompt() == "user: 2+2?"
    assert two.shown_prompt() == "system: Be brief.\nuser: hi"
    assert Sample("3", "x", prompt="Q: 1+1\nA:").shown_prompt() == "Q: 1+1\nA:"


def test_a_checked_read_is_taken_once_by_the_next_read_of_the_unchanged_file(tmp_path):
    """`evalfleet run` checks a dataset while planning, and its job reads it again in the
    same process: the job's read takes the check's samples, a later read reads the file."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(f'{{"prompt": "q{i}", "answer": "{i}"}}\n' for i in range(3)))
    planning = CustomTask("mine", path=data, scorer="exact_match", endpoint_type="chat")
    job = CustomTask("mine", path=data, scorer="exact_match", endpoint_type="chat")
    checked = planning.check(None)
    assert job.samples(None) is checked
    again = job.samples(None)
    assert again is not checked and again == checked
    assert job.samples(None) is not again  # a job's own read is not kept
    # Another limit or endpoint type reads the file as asked.
    assert len(job.samples(2)) == 2
    completions = CustomTask("mine", path=data, scorer="exact_match", endpoint_type="completions")
    assert completions.samples(None)[0].prompt == "q0"


def test_a_changed_file_is_read_again(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "q", "answer": "a"}\n')
    task = CustomTask("mine", path=data, scorer="exact_match", endpoint_type="chat")
    assert len(task.check(None)) == 1
    with data.open("a") as rows:
        rows.write('{"prompt": "r", "answer": "b"}\n')
    assert [s.target for s in task.check(None)] == ["a", "b"]
    data.write_text("")  # emptied since the kept read: the error, not the kept samples
    with pytest.raises(ConfigError, match="holds no samples"):
        task.samples(None)
