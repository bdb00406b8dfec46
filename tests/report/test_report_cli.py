"""`evalfleet report` from the command line: where the page goes, one line for what it
cannot do, and the page's data that no answer can break out of."""

from __future__ import annotations

import json
import re
from pathlib import Path

from evalfleet.executors.wheel import package_files
from evalfleet.report.html import embed_json
from tests.report.conftest import HOSTILE, FinishedRun


def _data(path: Path) -> dict:
    text = path.read_text()
    (raw,) = re.findall(
        r'<script type="application/json" id="evalfleet-data">(.*?)</script>', text, re.S
    )
    return json.loads(raw)


def test_report_writes_one_self_contained_page_next_to_the_run(cli, finished_run: FinishedRun):
    result = cli("report", finished_run.invocation_id[:5])
    assert result.code == 0, result.err
    path = Path(result.out.strip())
    assert path == finished_run.output_dir / "report.html"
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the prompts and answers
    text = path.read_text()
    # Nothing is fetched when it is viewed: no src/href to anything but in-page anchors.
    assert not re.search(r'\b(src|href)="(?!#)', text)
    data = _data(path)
    assert [t["task"] for t in data["tasks"]] == ["adds", "adds_exact"]
    assert len(data["tasks"][0]["samples"]) == 120
    # The hostile answer is in the data whole, and nowhere as markup.
    assert HOSTILE in [row[2] for row in data["tasks"][0]["samples"]]
    assert text.count("</script>") == 3  # the data and two scripts: their own ends only


def test_several_ids_make_one_page_and_o_chooses_where(cli, finished_run: FinishedRun, tmp_path):
    target = tmp_path / "out" / "both.html"
    result = cli(
        "report", finished_run.invocation_id, finished_run.invocation_id, "-o", str(target)
    )
    assert result.code == 0, result.err
    assert Path(result.out.strip()) == target
    assert [inv["invocation_id"] for inv in _data(target)["invocations"]] == [
        finished_run.invocation_id
    ]


def test_unknown_id_is_one_line_and_exit_2(cli):
    result = cli("report", "feedbeef")
    assert result.code == 2
    assert result.err.strip().splitlines() == ["error: no invocation matches 'feedbeef'"]


def test_a_run_without_results_is_one_line_and_exit_2(cli, finished_run: FinishedRun):
    for task in ("adds", "adds_exact"):
        (finished_run.output_dir / task / "results.json").unlink()
    result = cli("report", finished_run.invocation_id)
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"error: nothing to report for {finished_run.invocation_id}: ")
    assert "adds: SUCCESS" in line and "results.json not found" in line


def test_a_task_without_results_is_listed_as_not_shown(cli, finished_run: FinishedRun):
    (finished_run.output_dir / "adds_exact" / "results.json").unlink()
    result = cli("report", finished_run.invocation_id)
    assert result.code == 0, result.err
    data = _data(Path(result.out.strip()))
    assert [t["task"] for t in data["tasks"]] == ["adds"]
    assert [s["task"] for s in data["skipped"]] == ["adds_exact"]


def test_an_unwritable_output_is_one_line(cli, finished_run: FinishedRun, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("report", finished_run.invocation_id, "-o", str(blocker / "report.html"))
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"error: cannot write the report to {blocker / 'report.html'}")


def test_embedded_json_has_no_markup_and_reads_back_the_same():
    data = {"a": "</script><!-- <script>x</script> & >", "b": ["</SCRIPT>", 1.5, None]}
    text = embed_json(data)
    assert "<" not in text and ">" not in text
    assert json.loads(text) == data


def test_the_wheel_jobs_install_carries_the_pages_scripts():
    package = Path(__import__("evalfleet").__file__).resolve().parent
    names = {name for name, _ in package_files(package)}
    for asset in ("common.css", "common.js", "report.js", "compare.js", "sweep.js"):
        assert f"evalfleet/report/assets/{asset}" in names


def test_a_framework_packages_task_shows_its_request_log_and_a_normal_ci(tmp_path):
    from evalfleet.report._data import task_data

    # results.json and samples.jsonl as harness/run.py and harness/proxy.py write them.
    line = {
        "time": 1.0, "kind": "model", "path": "/v1/chat/completions", "status": 200,
        "cached": False, "latency_s": 0.25, "attempts": 1,
        "usage": {"prompt_tokens": 7, "completion_tokens": 3}, "error": None,
        "request": {"model": "m", "messages": [{"role": "user", "content": "2+2?"}]},
        "response": {"choices": [{"message": {"content": "4"}, "finish_reason": "stop"}]},
    }  # fmt: skip
    (tmp_path / "samples.jsonl").write_text(json.dumps(line) + "\n")
    results = {"headline_metric": "mmath_en_accuracy", "harness": {"package": "nvidia-mmath"},
               "metrics": {"mmath_en_accuracy": {"value": 0.5, "stderr": 0.1, "n": 2}}}  # fmt: skip
    data = task_data("inv", "inv.0", "mmath.mmath_en", tmp_path, results)
    metric = data["metrics"]["mmath_en_accuracy"]
    assert metric["ci95"] == [0.5 - 0.196, 0.5 + 0.196] and metric["ci95_from_stderr"]
    (row,) = data["samples"]
    assert row[1:3] == ["user: 2+2?", "4"] and row[5] is None  # the package scores, not we
    assert data["charts"]["latency"]["n"] == 1
    (tmp_path / "samples.jsonl").unlink()
    assert task_data("inv", "inv.0", "mmath.mmath_en", tmp_path, results)["has_samples"] is False
