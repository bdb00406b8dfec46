"""The benchmark scripts still run and print what their docstrings promise.

Not timed tests: speed is only read from a benchmark run by hand; this keeps the scripts
from rotting as the engine changes under them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_engine_throughput_prints_both_ratios_and_cpu_per_request():
    result = subprocess.run(
        [
            sys.executable, str(BENCHMARKS / "engine_throughput.py"),
            "--latency", "0.02", "--rounds", "3", "--parallelism", "4", "16",
            "--repeat", "2", "--skip-httpx",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    engine = re.findall(
        r"evalfleet +(\d+) req in .* ratio busy (\d\.\d+) +whole (\d\.\d+) +client CPU +(\d+) µs",
        result.stdout,
    )
    assert [int(sent) for sent, *_ in engine] == [12, 12, 48, 48]
    assert all(0 < float(whole) <= float(busy) <= 1.05 for _, busy, whole, _ in engine)
    assert len(re.findall(r"\+aiohttp +\d+ req in .* ratio busy", result.stdout)) == 2
