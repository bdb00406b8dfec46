"""The data cache against a local HTTP server in the real URL layouts: download once,
verify, atomic writes, offline mode, and the one-line errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalfleet import datasets
from evalfleet.datasets.sources import SOURCES
from evalfleet.exceptions import DataError
from tests.datafixtures import GSM8K, MMLU, url_path


def test_a_parquet_source_downloads_once_and_reads_back(data_mirror):
    rows = datasets.load_rows("gsm8k", "gsm8k-test")
    assert [row["question"] for row in rows] == [row["question"] for row in GSM8K]
    path = datasets.cached_path(SOURCES["gsm8k-test"])
    assert path.parts[-3:] == ("gsm8k-test", SOURCES["gsm8k-test"].revision, path.name)
    recorded = Path(f"{path}.sha256").read_text().strip()
    assert recorded == hashlib.sha256(path.read_bytes()).hexdigest()
    assert datasets.load_rows("gsm8k", "gsm8k-test") == rows
    hf_path = url_path(SOURCES["gsm8k-test"])
    assert hf_path.endswith(
        "/datasets/openai/gsm8k/resolve/cc7b047b6e5bb11b4f1af84efc572db110a51b3c/"
        "main/test-00000-of-00001.parquet"
    )
    assert data_mirror.hits[hf_path] == 1  # the second load came from the cache


def test_first_download_hash_is_enforced_later(data_mirror):
    source = SOURCES["mmlu-anatomy-test"]
    assert source.sha256 is None and source.pinned == "first-download"
    datasets.load_rows("mmlu", "mmlu-anatomy-test")
    path = datasets.cached_path(source)
    path.write_bytes(path.read_bytes()[:-10])  # damaged on disk
    data_mirror.put(source)  # the upstream still serves the right bytes
    rows = datasets.load_rows("mmlu", "mmlu-anatomy-test")
    assert len(rows) == sum(row["subject"] == "anatomy" for row in MMLU)
    assert data_mirror.hits[url_path(source)] == 2  # the damaged copy was fetched again


def test_a_pinned_sha256_mismatch_keeps_nothing(data_mirror):
    source = SOURCES["gpqa_diamond"]
    assert source.pinned == "sha256"  # the fixture bytes are not the real file's
    with pytest.raises(DataError) as caught:
        datasets.load_rows("gpqa_diamond", "gpqa_diamond")
    message = str(caught.value)
    assert "gpqa_diamond" in message and "sha256" in message and source.sha256 in message
    directory = datasets.cached_path(source).parent
    assert not directory.exists() or list(directory.iterdir()) == []


def test_a_pinned_sha256_match_is_accepted(data_mirror, monkeypatch):
    source = SOURCES["gpqa_diamond"]
    body = data_mirror.put(source)
    pinned = dataclasses.replace(source, sha256=hashlib.sha256(body).hexdigest())
    monkeypatch.setitem(SOURCES, source.name, pinned)
    assert len(datasets.load_rows("gpqa_diamond", "gpqa_diamond")) == 4


def test_offline_without_cache_names_task_source_and_fix(data_mirror, monkeypatch, cli):
    monkeypatch.setenv("EVALFLEET_OFFLINE", "1")
    with pytest.raises(DataError) as caught:
        datasets.load_rows("gsm8k", "gsm8k-test")
    message = str(caught.value)
    assert "\n" not in message
    for part in ("'gsm8k'", "openai/gsm8k", "EVALFLEET_OFFLINE", "evalfleet data pull gsm8k"):
        assert part in message
    assert sum(data_mirror.hits.values()) == 0


def test_offline_flag_reads_the_cache_but_never_the_network(data_mirror, cli, monkeypatch):
    assert cli("data", "pull", "gsm8k_cot_llama").code == 0
    result = cli("--offline", "data", "pull", "gsm8k_cot_llama", "mmlu")
    assert result.code == 1
    assert "lm-evaluation-harness.gsm8k_cot_llama: hf:openai/gsm8k@cc7b047" in result.out
    assert "(cached" in result.out
    assert result.err.startswith("error: task 'simple_evals.mmlu'") and result.err.count("\n") == 1
    assert data_mirror.hits[url_path(SOURCES["mmlu-anatomy-test"])] == 0


def test_http_errors_are_one_line(data_mirror):
    del data_mirror.files[url_path(SOURCES["aime_2025"])]
    with pytest.raises(DataError, match=r"task 'aime_2025': downloading .* failed: HTTP 404"):
        datasets.load_rows("aime_2025", "aime_2025")
    assert not datasets.is_cached(SOURCES["aime_2025"])


def test_unreachable_host_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALFLEET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EVALFLEET_OFFLINE", "")
    monkeypatch.setenv("EVALFLEET_HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(
        DataError, match=r"task 'arc_challenge': downloading http://127\.0\.0\.1:9/"
    ):
        datasets.load_rows("arc_challenge", "arc_challenge-test")


def test_data_pull_cli_prefetches_every_file_of_a_task(data_mirror, cli):
    result = cli("data", "pull", "evalfleet.mmlu_pro_cot", "math_500")
    assert result.code == 0, result.err
    assert result.out.count("downloaded, pinned by first-download") == 3
    assert all(datasets.is_cached(s) for s in datasets.sources_for("evalfleet.mmlu_pro_cot"))
    again = cli("data", "pull", "evalfleet.mmlu_pro_cot")
    assert again.out.count("(cached") == 2
    assert cli("data", "pull", "no_such_task").err.startswith("error: unknown task")
    assert cli("data", "pull", "bogus.ifeval").err.startswith(
        "error: task 'bogus.ifeval': unknown harness"
    )
    humaneval = cli("data", "pull", "simple_evals.humaneval").out
    assert humaneval.startswith("simple_evals.humaneval: no download needed")


def test_ls_tasks_json_reports_offline_availability(data_mirror, cli):
    before = {row["name"]: row for row in json.loads(cli("ls", "tasks", "--json").out)}
    mmlu = "simple_evals.mmlu"
    assert before[mmlu]["offline"] is False and before[mmlu]["samples"] == 14042
    assert before[mmlu]["source"].startswith("hf:cais/mmlu@c30699e")
    cli("data", "pull", "mmlu")
    after = {row["name"]: row for row in json.loads(cli("ls", "tasks", "--json").out)}
    assert after[mmlu]["offline"] is True
    assert after[mmlu]["files"][0]["cached"] is True
    assert after["simple_evals.gpqa_diamond"]["files"][0]["pinned_by"] == "sha256"
    assert after[mmlu]["reference"] == "nvidia-simple-evals 26.3"
    assert after["evalfleet.math_500"]["reference"] == "" and after["evalfleet.math_500"]["differs"]


def test_a_separate_process_downloads_through_the_env_overrides(data_mirror, tmp_path):
    """What a job on a cluster node does: `evalfleet data pull` as its own process."""
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-m", "evalfleet", "data", "pull", "evalfleet.aime_2024"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "evalfleet.aime_2024: hf:Maxwell-Jia/AIME_2024@8d88b28" in result.stdout
    assert datasets.is_cached(SOURCES["aime_2024"])
    assert Path(env["EVALFLEET_CACHE_DIR"]) == tmp_path / "cache"


def test_eval_offline_without_data_fails_in_one_line(data_mirror, cli, tmp_path):
    from tests.tasks.test_catalog_oracle import write_job

    job = write_job(tmp_path / "job", "http://127.0.0.1:9", "evalfleet.arc_challenge_cot")
    result = cli("--offline", "eval", "--job", str(job), "-q")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "evalfleet data pull evalfleet.arc_challenge_cot" in result.err
    assert sum(data_mirror.hits.values()) == 0


def test_cache_directory_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("EVALFLEET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "evalfleet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "evalfleet"


def test_a_mirror_override_that_is_not_a_url_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALFLEET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EVALFLEET_OFFLINE", "")
    monkeypatch.setenv("EVALFLEET_OPENAI_BLOB_ENDPOINT", "not-a-url")
    with pytest.raises(DataError, match=r"task 'gpqa_diamond': downloading not-a-url/"):
        datasets.load_rows("gpqa_diamond", "gpqa_diamond")


def test_data_pull_all_fetches_every_task_once(data_mirror, cli, monkeypatch):
    from tests.datafixtures import pin_fixture_hashes

    pin_fixture_hashes(monkeypatch)
    result = cli("data", "pull", "--all")
    assert result.code == 0, result.err
    assert all(datasets.is_cached(source) for source in SOURCES.values())
    assert all(count == 1 for count in data_mirror.hits.values())
    assert len(data_mirror.hits) == len(SOURCES)


def test_an_unwritable_cache_is_one_line(data_mirror, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("EVALFLEET_CACHE_DIR", str(blocker))
    with pytest.raises(DataError, match=r"task 'gsm8k': cannot write to the data cache"):
        datasets.load_rows("gsm8k", "gsm8k-test")
