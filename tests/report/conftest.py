"""A real browser for the HTML pages, and a finished local run to report on.

The browser is Debian's chromium (/usr/bin/chromium) driven by Playwright; without either
the browser tests skip, unless EVALFLEET_REQUIRE_BROWSER=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evalfleet.testing import run_simulator
from tests.engine.conftest import N_SAMPLES, oracle, prompt, write_dataset

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# A response that would end the data <script> element if it were pasted in unescaped.
HOSTILE = "</script><script>window.__pwned = 1</script><!-- It is 6."
LONG = "It is surely, without any doubt at all, the number {}."


def launch_browser(playwright: Any, user_data_dir: Path) -> Any:
    """Chromium with a fresh profile, as the brief's flags say (never a downloaded one)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
        viewport={"width": 1280, "height": 900},
    )  # fmt: skip


def _missing_browser() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return ""


# Per module, not per session: while Playwright's sync API is started it holds an event
# loop on this thread, and every later test that calls asyncio.run would fail.
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = _missing_browser()
    if missing:
        if os.environ.get("EVALFLEET_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EVALFLEET_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = launch_browser(playwright, tmp_path_factory.mktemp("chromium-profile"))
        context.set_default_timeout(30_000)  # every wait is bounded: a broken page fails
        try:
            yield context
        finally:
            context.close()


@dataclass
class Page:
    page: Any
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[[Path], Page]]:
    """Open a file in a new tab once its script says it is ready; console errors and
    uncaught exceptions are collected in `errors`."""
    opened: list[Any] = []

    def open_(path: Path) -> Page:
        page = browser.new_page()
        opened.append(page)
        result = Page(page)
        page.on("console", lambda m: result.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: result.errors.append(f"pageerror: {e}"))
        page.goto(path.resolve().as_uri())
        # Polled from here: wait_for_function evaluates strings in the page, which the
        # page's Content-Security-Policy (no eval) refuses.
        deadline = time.monotonic() + 30
        while not page.evaluate("window.__evalfleetReady !== undefined"):
            if time.monotonic() > deadline:
                pytest.fail(f"{path.name} never finished rendering; page errors: {result.errors}")
            time.sleep(0.05)
        return result

    yield open_
    for page in opened:
        page.close()


@dataclass(frozen=True)
class FinishedRun:
    invocation_id: str
    output_dir: Path  # the invocation's dir

    def samples(self, task: str) -> list[dict[str, Any]]:
        lines = (self.output_dir / task / "samples.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def results(self, task: str) -> dict[str, Any]:
        return json.loads((self.output_dir / task / "results.json").read_text())


def answers() -> dict[str, str]:
    """The oracle (3 in 4 right), one hostile answer, and every 10th answer long enough
    to be cut at max_new_tokens 6 (truncated, and then wrong)."""
    found = oracle()
    for i in range(0, N_SAMPLES, 10):
        found[prompt(i + 3)] = LONG.format(i + 4)
    found[prompt(5)] = HOSTILE
    return found


def category(number: int) -> str:
    return "small" if number < 40 else "large"


def with_categories(dataset: Path) -> Path:
    """The dataset with a `category` column (the report filters by it)."""
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    dataset.write_text(
        "".join(json.dumps({**row, "category": category(int(row["id"][1:]))}) + "\n" for row in rows)
    )
    return dataset


@pytest.fixture
def finished_run(write_yaml, tmp_path: Path) -> FinishedRun:
    """A real local run against the simulator: `adds` (120 samples: right, wrong,
    truncated, one hostile answer) and `adds_exact` (10 samples, exact_match)."""
    dataset = with_categories(write_dataset(tmp_path))
    with run_simulator(answers=answers()) as sim:
        config = write_yaml(
            f"""\
target:
  api_endpoint: {{url: "{sim.base_url}/v1/chat/completions", model_id: sim-model}}
execution: {{type: local, output_dir: {tmp_path / "results"}}}
evaluation:
  params: {{parallelism: 8, temperature: 0.0, max_new_tokens: 6}}
  tasks:
    - {{name: adds, dataset: {{path: {dataset}}}, scorer: numeric}}
    - {{name: adds_exact, dataset: {{path: {dataset}}}, scorer: exact_match, params: {{limit_samples: 10}}}}
""",
            name=f"config-{time.monotonic_ns()}.yaml",
        )
        # Its own process: Playwright's sync API keeps an event loop running in this one.
        result = subprocess.run(
            [sys.executable, "-m", "evalfleet", "run", "--config", str(config)],
            capture_output=True, text=True, timeout=300, env=dict(os.environ),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    invocation_id = result.stdout.strip().splitlines()[-1]
    return FinishedRun(invocation_id, tmp_path / "results" / invocation_id)
