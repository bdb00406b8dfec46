"""benchmarks/report_browser.py still runs, and a 100,000-sample report loads and filters
within its 2 s limit in chromium (the issue's acceptance; the script exits 1 when over)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_report_browser_loads_and_filters_100000_samples_within_the_limit():
    if not os.access("/usr/bin/chromium", os.X_OK):
        if os.environ.get("EVALFLEET_REQUIRE_BROWSER") == "1":
            pytest.fail("EVALFLEET_REQUIRE_BROWSER=1 but /usr/bin/chromium is not installed")
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "report_browser.py")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    times = re.findall(r"^(load|filter\+search) +(\d+\.\d+) s +ratio to the 2 s limit (\d\.\d+)",
                       result.stdout, re.MULTILINE)  # fmt: skip
    assert [label for label, *_ in times] == ["load", "filter+search"], result.stdout
    assert all(float(ratio) <= 1 for *_, ratio in times), result.stdout
    assert re.search(r"filter\+search shows [\d,]+ samples", result.stdout)
