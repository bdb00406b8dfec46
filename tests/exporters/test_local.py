"""Export to local files: one JSON and one CSV summary across invocations; the CLI's rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


def test_summary_across_invocations_has_a_row_per_finished_task(cli, run_invocation):
    first = run_invocation().invocation_id
    second = run_invocation(failing=True).invocation_id
    result = cli("export", first, second, "--dest", "local", "--output-dir", "out")
    assert result.code == 3
    # The reason the job failed, as its `evalfleet eval` said it, not just its exit code.
    line = result.err.strip()
    assert line.startswith(
        f"local: not exported {second}.2 broken: FAILED: pre_cmd exited with 3: "
    )
    assert line.endswith("the data share is not mounted")
    summary = json.loads(Path("out/summary.json").read_text())
    rows = summary["rows"]
    assert [(r["invocation_id"], r["task"]) for r in rows] == [
        (first, "adds"), (first, "adds_exact"), (second, "adds"), (second, "adds_exact"),
    ]  # fmt: skip
    for row in rows:
        results = json.loads((Path(row["output_dir"]) / "results.json").read_text())
        metric = results["metrics"][results["headline_metric"]]
        assert (row["headline_metric"], row["value"], row["stderr"], row["n"]) == (
            "accuracy", metric["value"], metric["stderr"], metric["n"],
        )  # fmt: skip
        assert row["model"] == "sim-model"
    assert [r["n"] for r in rows] == [120, 10, 120, 10]
    assert summary["not_exported"] == [
        {"invocation_id": second, "job_id": f"{second}.2", "task": "broken",
         "reason": result.err.strip().split(": ", 2)[2]},
    ]  # fmt: skip
    with open("out/summary.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [{k: v for k, v in r.items()} for r in table] == [
        {k: "" if v is None else str(v) for k, v in r.items()} for r in rows
    ]


def test_export_form_and_option_mistakes_are_one_line(cli, run_invocation):
    inv = run_invocation().invocation_id
    wrong = cli("export", inv, "--dest", "wandb", "--tracking-uri", "http://x")
    assert wrong.code == 2 and "--tracking-uri goes with --exporter mlflow, not wandb" in wrong.err
    assert cli("export").code == 2
    unknown = cli("export", "--invocation-id", "ffff", "--exporter", "local")
    assert unknown.code == 2 and unknown.err.strip() == "error: no invocation matches 'ffff'"
    bad_name = cli("export", inv, "--dest", "local", "--output-dir", "/proc/nope")
    assert bad_name.code == 1 and len(bad_name.err.strip().splitlines()) == 1
    assert "cannot write the summary to /proc/nope" in bad_name.err


def test_nothing_finished_is_an_error_naming_why(cli, run_invocation, write_yaml, tmp_path):
    (tmp_path / "one.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\n')
    config = write_yaml(  # nothing listens on port 9: the task fails at its first request
        f"target: {{api_endpoint: {{url: 'http://127.0.0.1:9/v1', model_id: m}}}}\n"
        f"evaluation: {{params: {{max_retries: 0}}, tasks: [{{name: t, dataset: "
        f"{{path: {tmp_path}/one.jsonl}}, scorer: numeric}}]}}\n"
    )
    run = cli("run", "--config", str(config))
    inv = run.out.strip().splitlines()[-1]
    result = cli("export", inv)
    assert result.code == 1
    assert result.err.startswith(
        f"error: nothing to export: no task has finished results ({inv}.0 t: FAILED"
    )
    assert not Path("evalfleet_exports").exists()


@pytest.mark.parametrize("dest", ["mlflow", "wandb"])
def test_a_missing_client_says_which_extra_to_install(cli, run_invocation, monkeypatch, dest):
    import sys

    inv = run_invocation().invocation_id
    monkeypatch.setitem(sys.modules, dest, None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    result = cli(
        "export",
        inv,
        "--dest",
        dest,
        *(["--tracking-uri", "file:///tmp/x"] if dest == "mlflow" else []),
    )
    assert result.code == 2
    assert f"pip install 'evalfleet[{dest}]'" in result.err


def test_a_task_whose_results_are_gone_is_reported_not_exported(cli, run_invocation):
    inv = run_invocation().invocation_id
    gone = Path("results") / inv / "adds_exact" / "results.json"
    gone.unlink()  # as when a remote job's files never came back
    result = cli("export", inv, "--dest", "local")
    assert result.code == 3
    assert result.err.strip() == (
        f"local: not exported {inv}.1 adds_exact: no results: {gone.resolve()} not found"
    )
    rows = json.loads(Path("evalfleet_exports/summary.json").read_text())["rows"]
    assert [r["task"] for r in rows] == ["adds"]


def test_status_of_an_ended_run_without_auto_export_never_reads_results(run_invocation):
    """`status` is polled often: with nothing to export it must not import the exporters'
    results reader (and the config package behind it), ~60-90 ms a call."""
    import os
    import subprocess
    import sys

    invocation_id = run_invocation().invocation_id
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "evalfleet", "status", invocation_id],
        capture_output=True, text=True, env=dict(os.environ), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "SUCCESS" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "evalfleet.exporters" in imported  # asked whether there is anything to export
    assert "evalfleet.exporters._gather" not in imported


def test_log_metrics_filters_as_the_launcher_does(tmp_path):
    """Launcher configs' `log_metrics` are parts of names (case-insensitive), matched
    against `<launcher task>_<metric>` too."""
    from evalfleet.exporters._gather import TaskExport

    metric = {"value": 0.5, "stderr": 0.1}
    task = TaskExport(
        "inv", "inv.0", "arc", tmp_path, {
            "task": "lm-evaluation-harness.arc_challenge",
            "metrics": {"acc": metric, "acc_norm": metric, "pass@1": metric},
            "counts": {"scored_samples": 4, "errors": 0},
        }, {},
    )  # fmt: skip
    assert set(task.metrics(["ACC_NORM"])) == {
        "acc_norm",
        "acc_norm_stderr",
        "samples_scored",
        "sample_errors",
    }
    assert {"acc", "acc_norm"} <= set(task.metrics(["arc_challenge_acc"]))
    assert "pass@1" not in task.metrics(["arc_challenge_acc"])
    assert set(task.metrics(["no_such"])) == {"samples_scored", "sample_errors"}
    assert len(task.metrics(None)) == 8
