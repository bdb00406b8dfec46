"""How fast a 100,000-sample `evalfleet report` page loads and filters in chromium.

    python benchmarks/report_browser.py [--samples 100000] [--limit 2.0] [--keep DIR]

Writes a synthetic task (results.json, samples.jsonl with prompts and answers of a few
hundred characters, a response cache for the charts), renders its report, opens it in
/usr/bin/chromium (Playwright) and measures:

- load: navigation start -> the sample list rendered (the page's `__evalfleetReady` mark);
- filter+search: the `wrong` filter and a search typed at once -> the list re-rendered and
  painted.

Prints both times and their ratio to the limit; exits 1 if either is over it (2 when no
browser can be started).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from evalfleet.report import write_report

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WORDS = ("the", "number", "answer", "so", "we", "add", "then", "carry", "step", "total", "is")


def make_task(task_dir: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    task_dir.mkdir(parents=True, exist_ok=True)
    right = 0
    with (task_dir / "samples.jsonl").open("w") as out:
        for i in range(n):
            gold = str(i % 997)
            ok = rng.random() < 0.7
            right += ok
            reasoning = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))
            answer = gold if ok else str(rng.randint(0, 996))
            truncated = rng.random() < 0.03
            record = {
                "id": f"s{i}", "repeat": 0,
                "prompt": f"user: Question {i}: what is {i % 997 - 1} plus one? Show your work.",
                "response": f"{reasoning} The answer is {answer}.",
                "extracted": answer, "score": 1.0 if ok else 0.0,
                "error": None, "target": gold, "finish_reason": "length" if truncated else "stop",
            }  # fmt: skip
            out.write(json.dumps(record) + "\n")
    value = right / n
    stderr = (value * (1 - value) / (n - 1)) ** 0.5
    results = {
        "task": "synthetic", "model_id": "bench-model", "headline_metric": "accuracy",
        "metrics": {"accuracy": {"value": value, "stderr": stderr,
                                 "ci95": [value - 1.96 * stderr, value + 1.96 * stderr], "n": n}},
        "counts": {"samples": n, "responses": n, "scored": n, "errors": 0, "truncated": 0,
                   "unfinished_reasoning": 0},
        "latency_s": {"p50": 0.5, "p95": 1.5}, "usage": {}, "wall_time_s": 60.0,
    }  # fmt: skip
    (task_dir / "results.json").write_text(json.dumps(results))
    with sqlite3.connect(task_dir / "cache.sqlite") as conn:
        conn.execute(
            "CREATE TABLE responses (key TEXT NOT NULL, reply TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO responses VALUES (?, ?, 0)",
            (
                (f"{i:064x}", json.dumps({"latency_s": rng.lognormvariate(-0.7, 0.6),
                                          "usage": {"prompt_tokens": rng.randint(20, 40),
                                                    "completion_tokens": rng.randint(30, 400)}}))
                for i in range(n)
            ),
        )  # fmt: skip


def build(root: Path, n: int) -> Path:
    invocation = root / "benchinv"
    make_task(invocation / "synthetic", n)
    job = SimpleNamespace(job_id="benchinv.0", task="synthetic", state="SUCCESS", detail="",
                          output_dir=str(invocation / "synthetic"))  # fmt: skip
    record = SimpleNamespace(invocation_id="benchinv", model="bench-model", executor="local",
                             created_at=time.time(), output_dir=str(invocation), jobs=(job,))  # fmt: skip
    return write_report([record], invocation / "report.html")


FILTER_AND_SEARCH = """async () => {
  const section = document.querySelector("section.task");
  const select = section.querySelector("select.verdict-filter");
  const search = section.querySelector('input[type="search"]');
  const t0 = performance.now();
  select.value = "wrong";
  select.dispatchEvent(new Event("change"));
  search.value = "plus one";
  search.dispatchEvent(new Event("input"));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return [performance.now() - t0, Number(section.querySelector(".shown").dataset.shown)];
}"""


def measure(path: Path) -> tuple[float, float, int]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri(), timeout=120_000)
            deadline = time.monotonic() + 120
            while (ready := page.evaluate("window.__evalfleetReady")) is None:
                if errors or time.monotonic() > deadline:
                    raise SystemExit(f"the page did not render: {errors or 'timed out'}")
                time.sleep(0.02)
            filter_ms, shown = page.evaluate(FILTER_AND_SEARCH)
        finally:
            context.close()
    return ready / 1000, filter_ms / 1000, int(shown)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--limit", type=float, default=2.0, help="seconds (default 2)")
    parser.add_argument("--keep", type=Path, help="build the report in this dir and keep it")
    options = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        print(f"{CHROMIUM} is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = options.keep or Path(tmp)
        started = time.perf_counter()
        path = build(root, options.samples)
        built = time.perf_counter() - started
        load, filtered, shown = measure(path)
    size = path.stat().st_size if options.keep else None
    print(f"report of {options.samples:,} samples built in {built:.2f} s"
          + (f", {size / 1e6:.1f} MB" if size else ""))  # fmt: skip
    over = False
    for label, seconds in (("load", load), ("filter+search", filtered)):
        ratio = seconds / options.limit
        over |= ratio > 1
        print(f"{label:14} {seconds:6.3f} s   ratio to the {options.limit:g} s limit {ratio:.3f}")
    print(f"filter+search shows {shown:,} samples")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
