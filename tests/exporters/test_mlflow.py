"""Export to a real MLflow tracking server, read back through MLflow's own client."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evalfleet import __version__
from evalfleet.exporters.to_mlflow import metric_key, public_uri, sanitized
from evalfleet.testing import run_simulator
from tests.exporters.conftest import free_port, refusing_relay

pytest.importorskip("mlflow", reason="needs the mlflow client: pip install 'evalfleet[mlflow]'")

SECRET = "sekrit-value-123"
# A literal secret in the config: it must be redacted from every exported artifact.
WITH_SECRET = f"env_vars: {{MY_TOKEN: {SECRET}}}\n"


def _runs(client, experiment: str, invocation_id: str) -> tuple[object, list[object]]:
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], f"tags.invocation_id = '{invocation_id}'")
    (parent,) = [r for r in runs if r.data.tags["evalfleet.kind"] == "invocation"]
    children = sorted(
        (r for r in runs if r.data.tags["evalfleet.kind"] == "task"),
        key=lambda r: r.data.tags["job_id"],
    )
    return parent, children


def _results(invocation_id: str, task: str) -> dict:
    return json.loads((Path("results") / invocation_id / task / "results.json").read_text())


def test_the_guides_command_exports_tags_params_metrics_and_artifacts(
    cli, run_invocation, mlflow_server, mlflow_client, tmp_path
):
    inv = run_invocation(extra=WITH_SECRET).invocation_id
    result = cli(
        "export", "--invocation-id", inv, "--exporter", "mlflow",
        "--tracking-uri", mlflow_server.url, "--experiment-name", "lepton-evaluations",
    )  # fmt: skip
    assert result.code == 0, result.err
    (summary,) = result.out.strip().splitlines()  # MLflow's own chatter does not reach stdout
    assert f"exported 2 task(s) of {inv} (2 new) to experiment 'lepton-evaluations'" in summary

    parent, children = _runs(mlflow_client, "lepton-evaluations", inv)
    assert parent.info.status == "FINISHED" and parent.info.run_name == f"evalfleet-{inv}"
    assert parent.data.params["model_id"] == "sim-model"
    assert parent.data.tags["evalfleet.not_exported"] == ""
    assert [c.data.tags["task"] for c in children] == ["adds", "adds_exact"]
    for index, (child, task) in enumerate(zip(children, ["adds", "adds_exact"], strict=True)):
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        assert child.info.status == "FINISHED"
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert (tags["invocation_id"], tags["job_id"]) == (inv, f"{inv}.{index}")
        assert (tags["executor"], tags["deployment_type"], tags["model"]) == (
            "local", "none", "sim-model",
        )  # fmt: skip
        assert params["model_id"] == "sim-model" and params["temperature"] == "0.0"
        assert params["evalfleet_version"] == __version__
        assert params["dataset.path"].endswith("adds.jsonl")
        results = _results(inv, task)
        accuracy = results["metrics"]["accuracy"]
        assert metrics["accuracy"] == pytest.approx(accuracy["value"])
        assert metrics["accuracy_stderr"] == pytest.approx(accuracy["stderr"])
        assert metrics["samples_scored"] == results["counts"]["scored_samples"]
        assert parent.data.metrics[f"{task}.accuracy"] == pytest.approx(accuracy["value"])
        names = {a.path for a in mlflow_client.list_artifacts(child.info.run_id)}
        assert names == {"results.json", "samples.jsonl", "config.yaml"}
        local = Path(mlflow_client.download_artifacts(child.info.run_id, "", str(tmp_path / task)))
        assert json.loads((local / "results.json").read_text()) == results
        shown = (local / "config.yaml").read_text()
        assert "sim-model" in shown and "MY_TOKEN: '***'" in shown
        assert SECRET not in shown + json.dumps(params) + json.dumps(tags)
    assert _results(inv, "adds")["metrics"]["accuracy"]["value"] == 0.75  # the oracle's 3 in 4


def test_exporting_again_updates_the_same_runs(cli, run_invocation, mlflow_server, mlflow_client):
    inv = run_invocation().invocation_id
    args = ["export", inv, "--dest", "mlflow", "--tracking-uri", mlflow_server.url,
            "--experiment-name", "twice"]  # fmt: skip
    assert cli(*args).code == 0
    first_parent, first = _runs(mlflow_client, "twice", inv)
    again = cli(*args)
    assert again.code == 0 and "(2 updated)" in again.out
    parent, children = _runs(mlflow_client, "twice", inv)
    assert parent.info.run_id == first_parent.info.run_id
    assert [c.info.run_id for c in children] == [c.info.run_id for c in first]
    for child in children:
        assert child.info.status == "FINISHED"
        # Unchanged values are not logged again: one point per metric, not one per export.
        assert len(mlflow_client.get_metric_history(child.info.run_id, "accuracy")) == 1


def test_a_failed_task_is_reported_and_the_others_exported(
    cli, run_invocation, mlflow_server, mlflow_client
):
    inv = run_invocation(failing=True).invocation_id
    result = cli("export", inv, "--dest", "mlflow", "--tracking-uri", mlflow_server.url)
    assert result.code == 3
    assert f"exported 2 task(s) of {inv}" in result.out
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"mlflow: not exported {inv}.2 broken: FAILED")
    parent, children = _runs(mlflow_client, "evalfleet", inv)  # the default experiment
    assert [c.data.tags["task"] for c in children] == ["adds", "adds_exact"]
    assert parent.data.tags["evalfleet.not_exported"] == f"{inv}.2:broken"
    assert parent.info.status == "FAILED"


def test_a_server_that_is_down_is_one_line_and_a_failure(cli, run_invocation):
    inv = run_invocation().invocation_id
    down = f"http://someone:pa55word@127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = cli("export", inv, "--dest", "mlflow", "--tracking-uri", down)
    assert result.code == 1 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert line.startswith(
        f"error: MLflow tracking server http://127.0.0.1:{down.rsplit(':', 1)[1]}"
    )
    assert "not reachable" in line and "pa55word" not in line
    assert time.monotonic() - started < 15


def test_a_server_that_refuses_is_one_line_and_a_failure(cli, run_invocation):
    inv = run_invocation().invocation_id
    with run_simulator() as not_mlflow:  # answers HTTP, but not MLflow's API
        result = cli("export", inv, "--dest", "mlflow", "--tracking-uri", not_mlflow.base_url)
    assert result.code == 1 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"error: MLflow at {not_mlflow.base_url}: ")
    assert "not a simulator route" in line  # the server's own words reach the user


def test_auto_export_at_the_end_of_a_local_run(run_invocation, mlflow_server, mlflow_client):
    ran = run_invocation(
        failing=True,
        auto_export=("mlflow", "local"),
        extra=(
            f"export: {{mlflow: {{tracking_uri: '{mlflow_server.url}', experiment_name: auto}},"
            " local: {output_dir: summaries}}\n"
        ),
    )
    inv = ran.invocation_id
    assert f"mlflow: exported 2 task(s) of {inv}" in ran.err
    assert f"mlflow: not exported {inv}.2 broken" in ran.err
    _, children = _runs(mlflow_client, "auto", inv)
    assert [c.data.tags["task"] for c in children] == ["adds", "adds_exact"]
    rows = json.loads(Path("summaries/summary.json").read_text())["rows"]
    assert [r["task"] for r in rows] == ["adds", "adds_exact"]


def test_auto_export_that_fails_does_not_fail_the_run(run_invocation):
    ran = run_invocation(
        auto_export=("mlflow",),
        extra=(f"export: {{mlflow: {{tracking_uri: 'http://127.0.0.1:{free_port()}'}}}}\n"),
    )
    (line,) = [line for line in ran.err.splitlines() if "auto-export" in line]
    assert "not reachable" in line
    assert f"evalfleet export {ran.invocation_id} --dest mlflow" in line


def test_log_metrics_and_log_samples_are_applied(cli, run_invocation, mlflow_server, mlflow_client):
    # More params than one MLflow call takes (100): they are sent in batches.
    extra = json.dumps({"checkpoint": "step-900", **{f"note{i}": i for i in range(120)}})
    settings = (
        "export: {mlflow: {log_metrics: [pass@1], log_samples: false, tags: {team: a},"
        f" extra_metadata: {extra}}}}}\n"
    )
    inv = run_invocation(extra=settings).invocation_id
    result = cli("export", inv, "--dest", "mlflow", "--tracking-uri", mlflow_server.url)
    assert result.code == 0, result.err
    _, children = _runs(mlflow_client, "evalfleet", inv)
    for child in children:
        assert "accuracy" not in child.data.metrics and "samples_scored" in child.data.metrics
        assert child.data.tags["team"] == "a" and child.data.params["checkpoint"] == "step-900"
        assert child.data.params["note119"] == "119"
        names = {a.path for a in mlflow_client.list_artifacts(child.info.run_id)}
        assert names == {"results.json", "config.yaml"}


def test_metric_names_are_sanitised_without_collisions():
    assert metric_key("pass@1") == "pass_at_1"
    assert metric_key("acc (strict)/mean") == "acc _strict_/mean"
    assert sanitized({"a+b": 1.0, "a_b": 2.0, "a*b": 3.0}) == {
        "a_b": 1.0,
        "a_b_2": 2.0,
        "a_b_3": 3.0,
    }
    assert public_uri("https://u:p@host:5000/x") == "https://host:5000/x"


def test_an_export_cut_short_is_not_reported_done_and_exporting_again_completes_it(
    cli, run_invocation, mlflow_server, mlflow_client
):
    inv = run_invocation().invocation_id
    # The server accepts the runs but refuses the first task's results.json upload.
    with refusing_relay(mlflow_server.url, refuse="results.json") as relay:
        cut = cli("export", inv, "--dest", "mlflow", "--tracking-uri", relay)
    assert cut.code == 1 and cut.out == ""
    (line,) = cut.err.strip().splitlines()
    assert line.startswith(f"error: MLflow at {relay}: ") and "403" in line
    parent, children = _runs(mlflow_client, "evalfleet", inv)
    assert parent.info.status == "RUNNING"
    assert [(c.data.tags["task"], c.info.status) for c in children] == [("adds", "RUNNING")]

    again = cli("export", inv, "--dest", "mlflow", "--tracking-uri", mlflow_server.url)
    assert again.code == 0 and "(1 new, 1 updated)" in again.out
    parent_again, children = _runs(mlflow_client, "evalfleet", inv)
    assert parent_again.info.run_id == parent.info.run_id and parent_again.info.status == "FINISHED"
    assert [(c.data.tags["task"], c.info.status) for c in children] == [
        ("adds", "FINISHED"), ("adds_exact", "FINISHED"),
    ]  # fmt: skip


def test_the_launchers_export_keys_name_skip_and_choose_files(
    cli, run_invocation, mlflow_server, mlflow_client
):
    # export.mlflow as launcher configs write it: run_name, log_logs (copy the task's
    # logs/), only_required: false (every file of the task but its response cache), and
    # skip_existing (an exported task's run is left as it is).
    settings = (
        "export: {mlflow: {run_name: nightly-42, log_logs: true, only_required: false,"
        " skip_existing: true, experiment_name: launcher-keys}}\n"
    )
    inv = run_invocation(extra=settings).invocation_id
    args = ["export", inv, "--dest", "mlflow", "--tracking-uri", mlflow_server.url]
    first = cli(*args)
    assert first.code == 0, first.err
    _, children = _runs(mlflow_client, "launcher-keys", inv)
    for child in children:
        assert child.info.run_name == "nightly-42"
        paths = {a.path for a in mlflow_client.list_artifacts(child.info.run_id)}
        assert {"results.json", "samples.jsonl", "job.json", "logs", "config.yaml"} <= paths
        assert not any(path.startswith("cache.sqlite") for path in paths)
        logs = {a.path for a in mlflow_client.list_artifacts(child.info.run_id, "logs")}
        assert "logs/eval.log" in logs
    again = cli(*args)
    assert again.code == 0, again.err
    _, after = _runs(mlflow_client, "launcher-keys", inv)
    assert [c.info.run_id for c in after] == [c.info.run_id for c in children]
    for before, child in zip(children, after, strict=True):
        assert child.info.end_time == before.info.end_time  # not reopened, not rewritten
