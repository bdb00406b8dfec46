"""`evalfleet report` on a real run, read back in a real browser: the numbers on the page
are results.json's, the filters and the search show exactly the samples they should, and
a model's answer cannot break the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.conftest import HOSTILE, FinishedRun


def _report(cli, run: FinishedRun, *extra: str) -> Path:
    result = cli("report", run.invocation_id, *extra)
    assert result.code == 0, result.err
    return Path(result.out.strip())


def _section(page, task: str):
    return page.locator(f'section.task[data-task="{task}"]')


def _shown(section) -> int:
    return int(section.locator(".shown").get_attribute("data-shown"))


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.strip("[]").split(",")]


def test_the_page_shows_results_json_numbers_with_no_console_error(cli, finished_run, open_page):
    path = _report(cli, finished_run)
    assert path == finished_run.output_dir / "report.html"
    opened = open_page(path)
    page = opened.page
    for task in ("adds", "adds_exact"):
        results = finished_run.results(task)
        metric = results["metrics"][results["headline_metric"]]
        section = _section(page, task)
        headline = section.locator(".headline")
        assert float(headline.locator('[data-field="value"]').inner_text()) == pytest.approx(
            metric["value"], abs=5e-5
        )
        assert (
            float(headline.locator('[data-field="value"]').get_attribute("data-raw"))
            == metric["value"]
        )
        shown_ci = _numbers(headline.locator('[data-field="ci95"]').inner_text())
        assert shown_ci == pytest.approx(metric["ci95"], abs=5e-5)
        assert float(headline.locator('[data-field="stderr"]').inner_text()) == pytest.approx(
            metric["stderr"], abs=5e-5
        )
        assert int(headline.locator('[data-field="n"]').inner_text()) == metric["n"]
        counts = results["counts"]
        for label, key in (("scored", "scored"), ("errors", "errors"), ("truncated", "truncated"),
                           ("reasoning unfinished", "unfinished_reasoning")):  # fmt: skip
            shown = section.locator(f'[data-count="{label}"] b').inner_text()
            assert int(shown.replace(",", "")) == counts[key], label
        # The summary table at the top says the same.
        row = page.locator("#summary tbody tr").filter(has_text=task).first
        assert float(row.locator('[data-field="value"]').inner_text()) == pytest.approx(
            metric["value"], abs=5e-5
        )
        # Latency and token charts are drawn (inline SVG, one bar per bin).
        assert section.locator(".chart svg rect.bar").count() > 0
    # The run has truncated answers (max_new_tokens 6 cut the long ones): it says so.
    assert finished_run.results("adds")["counts"]["truncated"] == 12
    assert opened.errors == []


def test_filters_show_exactly_the_wrong_and_the_truncated_samples(cli, finished_run, open_page):
    opened = open_page(_report(cli, finished_run))
    section = _section(opened.page, "adds")
    samples = finished_run.samples("adds")
    wrong = [s["id"] for s in samples if s["error"] is None and s["score"] < 1]
    truncated = [s["id"] for s in samples if s.get("finish_reason") == "length"]
    assert len(samples) == 120 and 0 < len(wrong) < 120 and truncated
    assert _shown(section) == 120
    # Only the visible rows are in the DOM (the list is virtual).
    assert 0 < section.locator(".vlist .vrow").count() < 120

    section.locator("select.verdict-filter").select_option("wrong")
    assert _shown(section) == len(wrong)
    rows = section.locator(".vlist .vrow")
    verdicts = {rows.nth(i).get_attribute("data-verdict") for i in range(rows.count())}
    assert verdicts == {"wrong"}
    first_ids = [rows.nth(i).locator(".c-id").inner_text() for i in range(min(5, rows.count()))]
    assert first_ids == wrong[:5]

    section.locator("select.verdict-filter").select_option("truncated")
    assert _shown(section) == len(truncated)
    section.locator("select.verdict-filter").select_option("error")
    assert _shown(section) == sum(1 for s in samples if s["error"])
    section.locator("select.verdict-filter").select_option("all")
    assert _shown(section) == 120
    assert opened.errors == []


def test_a_datasets_category_column_becomes_a_filter(cli, finished_run, open_page):
    samples = finished_run.samples("adds")
    small = [s["id"] for s in samples if s["metadata"]["category"] == "small"]
    assert len(small) == 40
    # Each answer's own time and tokens travel with it: the charts are drawn from them.
    assert all(s["latency_s"] > 0 and s["usage"]["completion_tokens"] > 0 for s in samples)
    opened = open_page(_report(cli, finished_run))
    section = _section(opened.page, "adds")
    groups = section.locator("select.group-filter")
    groups.select_option("small")
    assert _shown(section) == len(small)
    rows = section.locator(".vlist .vrow")
    assert [rows.nth(i).locator(".c-id").inner_text() for i in range(5)] == small[:5]
    section.locator("select.verdict-filter").select_option("wrong")
    assert _shown(section) == sum(
        1 for s in samples if s["id"] in small and s["error"] is None and s["score"] < 1
    )
    groups.select_option("")
    section.locator("select.verdict-filter").select_option("all")
    assert _shown(section) == 120
    assert opened.errors == []


def test_search_finds_samples_by_prompt_and_response(cli, finished_run, open_page):
    opened = open_page(_report(cli, finished_run))
    section = _section(opened.page, "adds")
    search = section.locator('input[type="search"]')
    search.fill("WHAT IS 77 PLUS")  # case-insensitive
    assert _shown(section) == 1
    assert section.locator(".vlist .vrow .c-id").inner_text() == "s77"
    search.fill("surely, without any doubt")  # in the truncated long answers' text
    expected = sum(
        1
        for s in finished_run.samples("adds")
        if "surely, without any doubt" in (s["response"] or "")
    )
    assert _shown(section) == expected > 0
    # Search and filter together.
    section.locator("select.verdict-filter").select_option("right")
    assert _shown(section) == 0
    search.fill("no sample says this")
    section.locator("select.verdict-filter").select_option("all")
    assert _shown(section) == 0
    assert opened.errors == []


def test_a_response_with_a_closing_script_tag_is_shown_as_text(cli, finished_run, open_page):
    samples = {s["id"]: s for s in finished_run.samples("adds")}
    assert samples["s5"]["response"] == HOSTILE
    opened = open_page(_report(cli, finished_run))
    page = opened.page
    assert page.evaluate("window.__pwned") is None
    section = _section(page, "adds")
    section.locator('input[type="search"]').fill("window.__pwned")
    assert _shown(section) == 1
    section.locator(".vlist .vrow").first.click()
    assert section.locator(".detail pre.d-response").inner_text() == HOSTILE
    assert section.locator(".detail pre.d-prompt").inner_text() == samples["s5"]["prompt"]
    assert opened.errors == []


def test_long_texts_are_cut_in_the_list_and_whole_when_opened(cli, finished_run, open_page):
    opened = open_page(_report(cli, finished_run))
    section = _section(opened.page, "adds")
    section.locator('input[type="search"]').fill("what is 3 plus one")
    row = section.locator(".vlist .vrow").first
    long_response = finished_run.samples("adds")[3]["response"]
    row.click()
    detail = section.locator(".detail")
    assert detail.locator("pre.d-response").inner_text() == long_response
    assert detail.locator("pre.d-gold").inner_text() == "4"
    assert opened.errors == []


def test_a_task_without_samples_shows_its_metrics_and_says_so(cli, finished_run, open_page):
    (finished_run.output_dir / "adds_exact" / "samples.jsonl").unlink()
    opened = open_page(_report(cli, finished_run))
    section = _section(opened.page, "adds_exact")
    assert "no samples.jsonl" in section.locator(".no-samples").inner_text()
    value = finished_run.results("adds_exact")["metrics"]["accuracy"]["value"]
    assert float(section.locator('.headline [data-field="value"]').inner_text()) == value
    assert _section(opened.page, "adds").locator(".vlist .vrow").count() > 0
    assert opened.errors == []
