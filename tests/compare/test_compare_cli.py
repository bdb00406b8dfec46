"""`evalfleet compare` end to end: real local runs against the endpoint simulator, whose
oracle file makes a "model" right on chosen samples, so two runs have known flips.

The task is tests/engine's arithmetic one (120 samples, `s<i>` asks for i + 1); the
baseline oracle is right unless i % 4 == 0 (90 right).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evalfleet.compare.stats import paired_bootstrap_ci95
from evalfleet.testing import run_simulator
from tests.engine.conftest import N_SAMPLES, oracle, prompt, write_dataset

contingency = pytest.importorskip("statsmodels.stats.contingency_tables")

BROKEN = {1, 2}  # the candidate gets these wrong (right in the baseline)


def candidate_oracle() -> dict[str, str]:
    """Right on every sample but BROKEN: 30 wrong->right (i % 4 == 0), 2 right->wrong."""
    return {prompt(i): ("no idea" if i in BROKEN else f"It is {i + 1}.") for i in range(N_SAMPLES)}


@pytest.fixture
def run(cli, write_yaml, tmp_path: Path):
    """Run tasks `adds` (numeric) and `adds_exact` (exact_match, 10 samples: wrong in every
    run) against a simulator answering from `answers` as `model`; returns the id."""

    def run(
        answers: dict[str, str],
        model: str = "sim-model",
        params: str = "",
        tasks: tuple[str, ...] = (),
        dataset: Path | None = None,
    ) -> str:
        data = dataset or tmp_path / "adds.jsonl"
        if not data.exists():
            write_dataset(tmp_path)
        with run_simulator(answers=answers, model=model) as sim:
            config = write_yaml(
                f"""\
target:
  api_endpoint: {{url: "{sim.base_url}/v1/chat/completions", model_id: {model}}}
execution: {{type: local, output_dir: results}}
evaluation:
  params: {{parallelism: 16, temperature: 0.0{params}}}
  tasks:
    - {{name: adds, dataset: {{path: {data}}}, scorer: numeric}}
    - {{name: adds_exact, dataset: {{path: {data}}}, scorer: exact_match, params: {{limit_samples: 10}}}}
""",
                name=f"config-{time.monotonic_ns()}.yaml",
            )
            only = [arg for task in tasks for arg in ("-t", task)]
            result = cli("run", "--config", str(config), *only)
        assert result.code == 0, result.err
        return result.out.strip().splitlines()[-1]

    return run


def results_of(invocation_id: str, task: str) -> dict:
    return json.loads((Path("results") / invocation_id / task / "results.json").read_text())


def test_known_flips_are_counted_tested_and_listed(cli, run) -> None:
    baseline = run(oracle())
    candidate = run(candidate_oracle(), model="sim-model-2")
    result = cli("compare", baseline, candidate, "--json")
    assert result.code == 0, result.err
    comparison = json.loads(result.out)
    assert comparison["kind"] == "compare"
    assert comparison["runs"] == [
        {"invocation_id": baseline, "model": "sim-model", "label": "sim-model"},
        {"invocation_id": candidate, "model": "sim-model-2", "label": "sim-model-2"},
    ]
    rows = {row["task"]: row for row in comparison["rows"]}
    adds = rows["adds"]
    assert adds["baseline_value"] == results_of(baseline, "adds")["metrics"]["accuracy"]["value"]
    assert adds["candidate_value"] == pytest.approx(
        results_of(candidate, "adds")["metrics"]["accuracy"]["value"]
    )
    assert adds["candidate_value"] == pytest.approx(118 / 120)
    assert adds["difference"] == pytest.approx(28 / 120)
    assert (adds["right_to_wrong"], adds["wrong_to_right"], adds["n_shared"]) == (2, 30, 120)
    assert (adds["kind"], adds["test"], adds["candidate"]) == ("binary", "mcnemar", candidate)
    table = [[88, 2], [30, 0]]
    assert adds["p_value"] == pytest.approx(contingency.mcnemar(table, exact=False).pvalue)
    differences = [-1.0] * 2 + [1.0] * 30 + [0.0] * 88
    assert adds["ci95"] == pytest.approx(list(paired_bootstrap_ci95(differences)))
    assert adds["ci95"][0] > 0 and adds["significant"] is True
    # adds_exact: wrong everywhere in both runs, zero discordant pairs.
    exact = rows["adds_exact"]
    assert (exact["difference"], exact["p_value"], exact["significant"]) == (0.0, 1.0, False)
    assert exact["ci95"] == [0.0, 0.0] and exact["n_shared"] == 10

    flips = comparison["flips"]
    lost = {f["sample_id"] for f in flips if f["direction"] == "right_to_wrong"}
    won = {f["sample_id"] for f in flips if f["direction"] == "wrong_to_right"}
    assert lost == {f"s{i}" for i in BROKEN}
    assert won == {f"s{i}" for i in range(0, N_SAMPLES, 4)}
    s1 = next(f for f in flips if f["sample_id"] == "s1")
    assert s1["task"] == "adds" and s1["candidate"] == candidate
    assert s1["prompt"] == "user: What is 1 plus one?" and s1["gold"] == "2"
    assert s1["baseline"] == {"response": "It is 2.", "extracted": "2", "score": 1.0}
    assert s1["candidate_answer"] == {"response": "no idea", "extracted": None, "score": 0.0}
    assert comparison["skipped"] == []

    text = cli("compare", baseline, candidate)
    assert text.code == 0, text.err
    line = next(line for line in text.out.splitlines() if line.startswith("adds "))
    for cell in ("accuracy", "0.7500", "0.9833", "+0.2333", "<0.0001", "mcnemar", "*",
                 "-2/+30", "120"):  # fmt: skip
        assert cell in line.split(), (cell, line)
    exact_line = next(line for line in text.out.splitlines() if line.startswith("adds_exact "))
    assert "*" not in exact_line.split() and "-0/+0" in exact_line
    assert f"baseline:  {baseline}" in text.out and f"candidate: {candidate}" in text.out


def test_no_significant_difference(cli, run) -> None:
    # As many samples lost as won: 4 and 4, the same accuracy.
    answers = oracle()
    for i in (0, 4, 8, 12):
        answers[prompt(i)] = f"It is {i + 1}."
    for i in (1, 2, 3, 5):
        answers[prompt(i)] = "no idea"
    baseline, candidate = run(oracle()), run(answers)
    result = cli("compare", baseline, candidate, "--json")
    assert result.code == 0, result.err
    adds = next(row for row in json.loads(result.out)["rows"] if row["task"] == "adds")
    assert (adds["right_to_wrong"], adds["wrong_to_right"], adds["difference"]) == (4, 4, 0.0)
    assert adds["p_value"] == contingency.mcnemar([[86, 4], [4, 26]], exact=True).pvalue == 1.0
    assert adds["ci95"][0] < 0 < adds["ci95"][1]
    assert adds["significant"] is False


def test_settings_that_differ_are_refused_unless_forced(cli, run) -> None:
    baseline = run(oracle())
    candidate = run(candidate_oracle(), params=", max_new_tokens: 64")
    refused = cli("compare", baseline, candidate)
    assert refused.code == 2
    assert refused.out == ""
    lines = refused.err.strip().splitlines()
    assert len(lines) == 1, refused.err
    assert "task settings differ" in lines[0]
    assert "params.max_new_tokens 1024 vs 64" in lines[0]
    assert "adds (" in lines[0] and "--force" in lines[0]

    forced = cli("compare", baseline, candidate, "--force", "--json")
    assert forced.code == 0, forced.err
    assert "warning: settings differ" in forced.err and "max_new_tokens" in forced.err
    assert {row["task"] for row in json.loads(forced.out)["rows"]} == {"adds", "adds_exact"}


def test_a_changed_prompt_is_refused(cli, run, tmp_path: Path) -> None:
    baseline = run(oracle())
    other = tmp_path / "other" / "adds.jsonl"
    other.parent.mkdir()
    with other.open("w") as handle:
        for i in range(N_SAMPLES):
            row = {"id": f"s{i}", "prompt": f"Compute {i} + 1.", "answer": str(i + 1)}
            handle.write(json.dumps(row) + "\n")
    candidate = run(oracle(), dataset=other)
    refused = cli("compare", baseline, candidate)
    assert refused.code == 2
    assert "adds (" in refused.err and "prompt differs for 120 of 120 shared samples" in refused.err


def test_tasks_not_shared_are_skipped(cli, run) -> None:
    baseline = run(oracle())
    candidate = run(candidate_oracle(), tasks=("adds",))
    result = cli("compare", baseline, candidate, "--json")
    assert result.code == 0, result.err
    comparison = json.loads(result.out)
    assert [row["task"] for row in comparison["rows"]] == ["adds"]
    assert comparison["skipped"] == [
        {"task": "adds_exact", "reason": f"not finished in every run ({candidate}: not run)"}
    ]
    text = cli("compare", baseline, candidate)
    assert f"skipped adds_exact: not finished in every run ({candidate}: not run)" in text.out


def test_bad_use_is_one_line(cli, run) -> None:
    baseline = run(oracle())
    for args, expected in (
        ((baseline,), "a baseline and at least one candidate"),
        ((baseline, "ffffffff"), "ffffffff"),
        ((baseline, baseline), "named twice"),
        ((baseline, baseline, "--markdown", "x.md"), "--markdown goes with --sweep"),
    ):
        result = cli("compare", *args)
        assert result.code == 2, (args, result.err)
        assert expected in result.err, (args, result.err)
        assert "Traceback" not in result.err
        assert len([line for line in result.err.splitlines() if line.startswith("error")]) <= 1


def test_sweep_table_markdown_and_newest_wins(cli, run, tmp_path: Path) -> None:
    old = run(oracle())
    other = run(candidate_oracle(), model="sim-model-2")
    newest_answers = oracle()
    for i in (0, 4):
        newest_answers[prompt(i)] = f"It is {i + 1}."
    newest = run(newest_answers)  # sim-model again, later: 92 right
    markdown = tmp_path / "sweep.md"
    result = cli("compare", "--sweep", old, other, newest, "--markdown", str(markdown))
    assert result.code == 0, result.err
    assert f"note: sim-model ran adds in 2 invocations: the newest, {newest}, is shown " \
           f"({old} left out)" in result.out  # fmt: skip
    text = markdown.read_text()
    new_adds = results_of(newest, "adds")["metrics"]["accuracy"]
    other_adds = results_of(other, "adds")["metrics"]["accuracy"]
    assert new_adds["value"] == pytest.approx(92 / 120)
    cell = f"{new_adds['value']:.4f} [{new_adds['ci95'][0]:.4f}, {new_adds['ci95'][1]:.4f}]"
    other_cell = (
        f"{other_adds['value']:.4f} [{other_adds['ci95'][0]:.4f}, {other_adds['ci95'][1]:.4f}]"
    )
    lines = text.splitlines()
    assert lines[0] == "| model | adds (accuracy) | adds_exact (accuracy) |"
    assert lines[2].startswith(f"| sim-model | {cell} | 0.0000 [0.0000, 0.0000] |")
    assert lines[3].startswith(f"| sim-model-2 | {other_cell} |")
    assert f"Note: sim-model ran adds in 2 invocations: the newest, {newest}" in text

    data = json.loads(cli("compare", "--sweep", old, other, newest, "--json").out)
    assert data["kind"] == "sweep"
    assert data["models"] == ["sim-model", "sim-model-2"]
    assert data["tasks"] == ["adds", "adds_exact"]
    cells = {(c["model"], c["task"]): c for c in data["cells"]}
    assert cells[("sim-model", "adds")] == {
        "model": "sim-model", "task": "adds", "metric": "accuracy",
        "value": new_adds["value"], "ci95": new_adds["ci95"], "n": 120, "invocation_id": newest,
    }  # fmt: skip
    assert cells[("sim-model-2", "adds")]["invocation_id"] == other


def test_html_pages_are_written(cli, run, tmp_path: Path) -> None:
    pytest.importorskip("evalfleet.report.html", reason="the HTML pages are evalfleet.report's")
    baseline = run(oracle())
    candidate = run(candidate_oracle(), model="sim-model-2")
    page = tmp_path / "compare.html"
    result = cli("compare", baseline, candidate, "--html", str(page))
    assert result.code == 0, result.err
    html = page.read_text()
    assert baseline in html and candidate in html and "right_to_wrong" in html
    sweep_page = tmp_path / "sweep.html"
    result = cli("compare", "--sweep", baseline, candidate, "--html", str(sweep_page))
    assert result.code == 0, result.err
    assert "sim-model-2" in sweep_page.read_text()
