"""The compare and sweep pages, from the dicts `evalfleet compare` builds, in a real
browser: no console error, the table's numbers are the dict's, the flip filters work."""

from __future__ import annotations

import pytest

from evalfleet.exceptions import UsageError
from evalfleet.report import write_compare_html, write_sweep_html
from tests.report.conftest import HOSTILE

RUNS = [
    {"invocation_id": "aaaa1111", "model": "base-7b", "label": "base-7b"},
    {"invocation_id": "bbbb2222", "model": "tuned-7b", "label": "tuned-7b"},
]
ROWS = [
    {"task": "gsm8k", "metric": "accuracy", "kind": "binary", "candidate": "bbbb2222",
     "baseline_value": 0.61, "candidate_value": 0.655, "difference": 0.045,
     "ci95": [0.0121, 0.0779], "p_value": 0.00731, "test": "mcnemar", "significant": True,
     "n_shared": 200, "right_to_wrong": 3, "wrong_to_right": 12},
    {"task": "ifeval", "metric": "prompt_strict", "kind": "continuous", "candidate": "bbbb2222",
     "baseline_value": 0.4, "candidate_value": 0.39, "difference": -0.01,
     "ci95": [-0.05, 0.03], "p_value": 0.62, "test": "permutation", "significant": False,
     "n_shared": 100, "right_to_wrong": 2, "wrong_to_right": 1},
]  # fmt: skip


def _flip(task: str, n: int, direction: str) -> dict:
    right = {"response": "The answer is 4.", "extracted": "4", "score": 1.0}
    wrong = {"response": HOSTILE, "extracted": "5", "score": 0.0}
    before, after = (right, wrong) if direction == "right_to_wrong" else (wrong, right)
    return {"task": task, "candidate": after, "sample_id": f"{task}-{n}", "direction": direction,
            "prompt": f"What is 2 plus 2? ({task} {n})", "gold": "4", "baseline": before}  # fmt: skip


FLIPS = (
    [_flip("gsm8k", i, "right_to_wrong") for i in range(3)]
    + [_flip("gsm8k", 10 + i, "wrong_to_right") for i in range(12)]
    + [_flip("ifeval", 20 + i, "right_to_wrong") for i in range(2)]
    + [_flip("ifeval", 30, "wrong_to_right")]
)
COMPARISON = {"kind": "compare", "runs": RUNS, "rows": ROWS, "flips": FLIPS,
              "skipped": [{"task": "mmlu", "reason": "only in aaaa1111"}]}  # fmt: skip


def _shown(page) -> int:
    return int(page.locator(".shown").get_attribute("data-shown"))


def test_compare_page_shows_the_dicts_numbers_and_marks_significant_rows(open_page, tmp_path):
    path = tmp_path / "compare.html"
    write_compare_html(COMPARISON, path)
    opened = open_page(path)
    rows = opened.page.locator("#differences tbody tr")
    assert rows.count() == 2
    for i, expected in enumerate(ROWS):
        row = rows.nth(i)

        def cell(name: str, row=row) -> str:
            return row.locator(f'[data-field="{name}"]').inner_text()

        for name in ("baseline_value", "candidate_value", "difference", "p_value"):
            assert float(cell(name)) == pytest.approx(expected[name], abs=5e-5), name
        low, high = (float(x) for x in cell("ci95").strip("[]").split(","))
        assert [low, high] == pytest.approx(expected["ci95"], abs=5e-5)
        for name in ("n_shared", "right_to_wrong", "wrong_to_right"):
            assert int(cell(name)) == expected[name], name
        assert row.get_attribute("data-significant") == ("yes" if expected["significant"] else "no")
        assert ("significant" in cell("significant")) is expected["significant"]
    assert "only in aaaa1111" in opened.page.locator("#skipped").inner_text()
    assert opened.errors == []


def test_compare_page_flip_filters_by_task_and_direction(open_page, tmp_path):
    path = tmp_path / "compare.html"
    write_compare_html(COMPARISON, path)
    opened = open_page(path)
    page = opened.page
    assert _shown(page) == len(FLIPS)
    page.locator("select.task-filter").select_option("gsm8k")
    assert _shown(page) == 15
    page.locator("select.direction-filter").select_option("right_to_wrong")
    assert _shown(page) == 3
    rows = page.locator(".vlist .vrow")
    assert {rows.nth(i).get_attribute("data-direction") for i in range(rows.count())} == {
        "right_to_wrong"
    }
    page.locator("select.task-filter").select_option("ifeval")
    assert _shown(page) == 2
    page.locator("select.direction-filter").select_option("wrong_to_right")
    assert _shown(page) == 1
    rows.first.click()
    # Baseline and candidate side by side; the hostile answer shown as text.
    responses = page.locator(".detail .side pre")
    assert HOSTILE in [responses.nth(i).inner_text() for i in range(responses.count())]
    assert page.evaluate("window.__pwned") is None
    assert opened.errors == []


def test_sweep_page_is_a_models_by_tasks_table_with_cis(open_page, tmp_path):
    sweep = {
        "kind": "sweep", "models": ["base-7b", "tuned-7b"], "tasks": ["gsm8k", "ifeval"],
        "cells": [
            {"model": "base-7b", "task": "gsm8k", "metric": "accuracy", "value": 0.61,
             "ci95": [0.54, 0.68], "n": 200, "invocation_id": "aaaa1111"},
            {"model": "tuned-7b", "task": "gsm8k", "metric": "accuracy", "value": 0.655,
             "ci95": [0.589, 0.721], "n": 200, "invocation_id": "bbbb2222"},
            {"model": "tuned-7b", "task": "ifeval", "metric": "prompt_strict", "value": 0.39,
             "ci95": [0.3, 0.48], "n": 100, "invocation_id": "bbbb2222"},
        ],
    }  # fmt: skip
    path = tmp_path / "sweep.html"
    write_sweep_html(sweep, path)
    opened = open_page(path)
    page = opened.page
    for cell in sweep["cells"]:
        td = page.locator(f'#sweep tr[data-model="{cell["model"]}"] td[data-task="{cell["task"]}"]')
        assert float(td.locator('[data-field="value"]').inner_text()) == pytest.approx(
            cell["value"]
        )
        low, high = (
            float(x) for x in td.locator('[data-field="ci95"]').inner_text().strip("[]").split(",")
        )
        assert [low, high] == pytest.approx(cell["ci95"])
        assert td.locator('[data-field="n"]').inner_text() == f"n={cell['n']}"
    missing = page.locator('#sweep tr[data-model="base-7b"] td[data-task="ifeval"]')
    assert missing.inner_text() == "—"
    assert opened.errors == []


def test_pages_refuse_a_dict_of_the_wrong_kind(tmp_path):
    with pytest.raises(UsageError, match="kind 'compare'"):
        write_compare_html({"kind": "sweep"}, tmp_path / "x.html")
    with pytest.raises(UsageError, match="lists models, tasks, cells"):
        write_sweep_html({"kind": "sweep"}, tmp_path / "x.html")
