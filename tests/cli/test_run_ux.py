"""`evalfleet run` for a first hour: --limit, --url/--model without a config file, the
end-of-run summary, the last progress frame, and a dry run that shows the plan first."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
from pathlib import Path

import pytest

from evalfleet import progress as display
from evalfleet.engine.runner import RunProgress
from evalfleet.testing import run_simulator
from tests.config.test_guide import QUICK_START_HERE
from tests.engine.conftest import N_SAMPLES, oracle, write_dataset

TWO_TASKS = """\
target: {{api_endpoint: {{url: {url}/v1, model_id: sim-model}}}}
execution: {{type: local, output_dir: results}}
evaluation:
  params: {{limit_samples: 20}}
  tasks:
    - {{name: adds, dataset: {{path: {data}}}, scorer: numeric}}
    - {{name: adds_own, dataset: {{path: {data}}}, scorer: numeric, params: {{limit_samples: 10}}}}
"""


def _results(invocation_id: str, task: str, root: str = "results") -> dict:
    return json.loads((Path(root) / invocation_id / task / "results.json").read_text())


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# ---------------------------------------------------------------------------- --limit


def test_limit_wins_over_the_configs_and_every_tasks_own_limit(cli, write_yaml, tmp_path):
    data = write_dataset(tmp_path)
    with run_simulator(answers=oracle()) as sim:
        config = write_yaml(TWO_TASKS.format(url=sim.base_url, data=data))
        result = cli("run", "--config", str(config), "--limit", "3")
        assert result.code == 0, result.err
        assert sim.stats()["requests"] == 6
    invocation_id = _last_line(result.out)
    for task in ("adds", "adds_own"):
        assert _results(invocation_id, task)["counts"]["samples"] == 3


def test_limit_goes_with_dry_run_and_is_refused_with_raw_configs(cli, write_yaml, tmp_path):
    data = write_dataset(tmp_path)
    config = write_yaml(TWO_TASKS.format(url="http://127.0.0.1:9", data=data))
    shown = cli("run", "--config", str(config), "--limit", "4", "--dry-run", "--json")
    assert shown.code == 0, shown.err
    plan = json.loads(shown.out)
    assert plan["config"]["evaluation"]["params"]["limit_samples"] == 4
    assert [t["params"]["limit_samples"] for t in plan["config"]["evaluation"]["tasks"]] == [4, 4]
    raw = cli("run", "--config", str(config), "--config-mode", "raw", "--limit", "4", "-n")
    assert raw.code == 2 and "--limit" in raw.err


# ------------------------------------------------------------------ --url / --model


def test_url_and_model_run_a_task_without_a_config_file(cli):
    with run_simulator() as sim:
        result = cli(
            "run", "--url", f"{sim.base_url}/v1", "--model", "sim-model", "-t", "ifeval",
            "--limit", "2",
        )  # fmt: skip
        assert result.code == 0, result.err
        assert sim.stats()["requests"] == 2
    invocation_id = _last_line(result.out)
    (row,) = json.loads(cli("status", invocation_id, "--json").out)
    assert (row["task"], row["state"]) == ("ifeval", "SUCCESS")
    record = json.loads(cli("info", invocation_id, "--json").out)
    assert record["model"] == "sim-model" and record["executor"] == "local"
    results = json.loads((Path(record["jobs"][0]["output_dir"]) / "results.json").read_text())
    assert results["counts"]["samples"] == 2 and results["task"] == "lm-evaluation-harness.ifeval"
    saved = (Path(record["output_dir"]) / "config.yaml").read_text()
    assert sim.base_url in saved and "command_line.yaml" not in saved


def test_url_and_model_dry_run_shows_the_built_config(cli):
    result = cli(
        "run", "--url", "http://127.0.0.1:9/v1", "--model", "m1", "-t", "ifeval", "-t",
        "humaneval", "--api-key-name", "SOME_KEY_H3", "-n", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    config = json.loads(result.out)["config"]
    assert config["target"]["api_endpoint"] == {
        **config["target"]["api_endpoint"],
        "url": "http://127.0.0.1:9/v1", "model_id": "m1", "api_key_name": "SOME_KEY_H3",
    }  # fmt: skip
    assert config["execution"]["type"] == "local"
    assert [t["name"] for t in config["evaluation"]["tasks"]] == ["ifeval", "humaneval"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--config", "x.yaml"], "--config"),
        (["--config-name", "x"], "--config-name"),
        (["--model", "m"], "-t TASK"),  # --url without a task
        (["-t", "ifeval"], "--url and --model go together"),  # --url without --model
    ],
)
def test_url_refuses_what_does_not_go_with_it_in_one_line(cli, isolated, args, fragment):
    result = cli("run", "--url", "http://127.0.0.1:9/v1", *args)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert fragment in result.err and "Traceback" not in result.err
    assert not isolated.exists(), "nothing may be recorded"


def test_url_with_an_unset_key_variable_stops_before_recording(cli, isolated, monkeypatch):
    monkeypatch.delenv("UNSET_KEY_H3", raising=False)
    result = cli(
        "run", "--url", "http://127.0.0.1:9/v1", "--model", "m", "-t", "ifeval",
        "--api-key-name", "UNSET_KEY_H3",
    )  # fmt: skip
    assert result.code == 2
    assert "UNSET_KEY_H3" in result.err
    assert not isolated.exists()
    assert not Path("evalfleet_results").exists()


def test_url_model_and_limit_are_handed_to_the_detached_run(cli):
    with run_simulator() as sim:
        started = cli(
            "run", "--url", f"{sim.base_url}/v1", "--model", "sim-model", "-t", "ifeval",
            "--limit", "3", "--detach",
        )  # fmt: skip
        assert started.code == 0, started.err
        invocation_id = _last_line(started.out)
        deadline = time.monotonic() + 120  # a bound, not a speed check
        while True:
            (row,) = json.loads(cli("status", invocation_id, "--json").out)
            if row["state"] in ("SUCCESS", "FAILED", "KILLED") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert row["state"] == "SUCCESS", row
        assert sim.stats()["requests"] == 3


# ---------------------------------------------------------------- end-of-run summary


def test_summary_labels_the_interval_counts_truncation_and_says_what_next(cli, write_yaml):
    with run_simulator() as sim:
        config = write_yaml(
            f"""\
target: {{api_endpoint: {{url: {sim.base_url}/v1, model_id: sim-model}}}}
execution: {{type: local, output_dir: results}}
evaluation:
  params: {{limit_samples: 6, max_new_tokens: 2}}
  tasks: [{{name: ifeval}}]
"""
        )
        result = cli("run", "--config", str(config))
    assert result.code == 0, result.err
    invocation_id = _last_line(result.out)
    results = _results(invocation_id, "ifeval")
    metric = results["metrics"][results["headline_metric"]]
    low, high = metric["ci95"]
    counts = results["counts"]
    assert counts["truncated"] > counts["responses"] / 2  # the echo is cut at 2 words
    expected = (
        f"ifeval  {results['headline_metric']} {metric['value']:.4f} "
        f"(95% CI {low:.2f}\u2013{high:.2f}, n={counts['scored_samples']}, errors 0, "
        f"truncated {counts['truncated']})"
    )
    assert expected in result.err
    assert re.search(rf"Summary of {invocation_id} \(elapsed \d+\.\d s\)", result.err)
    (warning,) = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert f"{counts['truncated']} of {counts['responses']} answers" in warning
    assert "max_new_tokens=2" in warning
    assert "-o evaluation.tasks.ifeval.params.max_new_tokens=4" in warning
    for command in ("report", "status"):
        assert f"evalfleet {command} {invocation_id}" in result.err
    assert f"evalfleet export {invocation_id} --dest local" in result.err


def test_summary_without_truncation_has_no_warning_and_the_id_stays_last(cli, write_yaml, tmp_path):
    data = write_dataset(tmp_path)
    with run_simulator(answers=oracle()) as sim:
        config = write_yaml(TWO_TASKS.format(url=sim.base_url, data=data))
        result = cli("run", "--config", str(config))
    assert result.code == 0, result.err
    invocation_id = _last_line(result.out)
    assert re.fullmatch(r"[0-9a-f]{8}", invocation_id)
    assert "warning:" not in result.err
    assert re.search(
        r"adds_own  accuracy 0\.\d{4} \(95% CI [\d.]+\u2013[\d.]+, n=10, errors 0", result.err
    )
    assert "adds      accuracy 0.7500 (95% CI" in result.err
    assert N_SAMPLES > 20  # the config's own limit is what ran


def test_the_fallback_label_names_the_standard_error():
    from evalfleet.contract import headline_text

    results = {
        "headline_metric": "acc",
        "metrics": {"acc": {"value": 0.5, "stderr": 0.1}},
        "counts": {"responses": 8, "errors": 1},
    }
    assert headline_text(results) == "acc 0.5000 (± 0.1000 std. error, n=8, errors 1)"


# ---------------------------------------------------------------- last progress frame


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _final_frame(counters: RunProgress) -> str:
    stream = _Terminal()

    async def scenario() -> None:
        shown = asyncio.ensure_future(display.show_progress(counters, stream))
        await asyncio.sleep(0)  # started, and cancelled before its first redraw
        shown.cancel()
        await asyncio.wait_for(asyncio.gather(shown, return_exceptions=True), 30)

    asyncio.run(scenario())
    return stream.getvalue().rsplit("\r", 1)[-1]


def test_a_run_faster_than_a_redraw_ends_on_its_real_totals():
    counters = RunProgress(task="adds", total=20, done=20, started=time.monotonic() - 2)
    frame = _final_frame(counters)
    assert "20/20" in frame and "20/?" not in frame
    (rate,) = re.findall(r"(\d+\.\d) req/s", frame)
    assert 0 < float(rate) <= 10, frame  # 20 sent in a little over 2 s: not the first frame's 0


def test_a_run_without_a_known_total_ends_on_what_it_answered():
    # A framework package's run: the total is unknown while it runs.
    counters = RunProgress(task="pkg", total=0, done=7, errors=1, started=time.monotonic() - 1)
    frame = _final_frame(counters)
    assert "7/8" in frame and "?" not in frame.split("req/s")[0], frame


# -------------------------------------------------------------------------- dry run


def test_dry_run_prints_the_plan_first_and_the_config_only_when_asked(cli, write_yaml, tmp_path):
    data = write_dataset(tmp_path)
    config = write_yaml(TWO_TASKS.format(url="http://127.0.0.1:9", data=data))
    plain = cli("run", "--config", str(config), "--dry-run")
    assert plain.code == 0, plain.err
    headings = [line for line in plain.out.splitlines() if line.startswith("== ")]
    assert headings[0].startswith("== Plan: local invocation")
    assert not any("Resolved config" in h for h in headings)
    assert "--show-config" in plain.out
    assert plain.out.count('"schema_version": 1') == 2  # each job's job.json, decoded
    shown = cli("run", "--config", str(config), "--dry-run", "--show-config")
    assert shown.code == 0, shown.err
    headings = [line for line in shown.out.splitlines() if line.startswith("== ")]
    assert headings[0].startswith("== Plan:")
    assert "== Resolved config (secrets redacted) ==" in headings
    assert "limit_samples: 20" in shown.out
    refused = cli("run", "--config", str(config), "--show-config")
    assert refused.code == 2 and "--dry-run" in refused.err


def test_dry_run_shows_each_lepton_job_json_decoded_not_base64(cli):
    result = cli(*QUICK_START_HERE, "--dry-run", "--plan-out", "plan.json")
    assert result.code == 0, result.err
    plan = json.loads(Path("plan.json").read_text())["plan"]
    for job in plan["jobs"]:
        script = json.dumps(job["body"])
        (payload,) = re.findall(r"printf '%s' ([A-Za-z0-9+/=]{40,}) \| base64 -d", script)
        assert payload not in result.out
        assert f"<job.json of {job['job_id']}, below>" in result.out
        decoded = json.loads(base64.b64decode(payload))
        assert json.dumps(decoded, indent=2, sort_keys=True) in result.out
    as_json = json.loads(cli(*QUICK_START_HERE, "--dry-run", "--json", "--plan-out", "p2.json").out)
    assert list(as_json["job_json"]) == [job["job_id"] for job in as_json["plan"]["jobs"]]
