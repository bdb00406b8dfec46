"""The benchmark scripts still run and print what their docstrings promise.

Not timed tests: speed is only read from a benchmark run by hand; this keeps the scripts
from rotting as the engine changes under them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from evalfleet.harness.environment import is_built

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


def test_endpoint_sharing_prints_the_whole_run_ratio_and_the_tasks_side_by_side():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "endpoint_sharing.py"), "--samples", "64"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ((wall, whole, start, serving, end),) = re.findall(
        r"evalfleet run +(\d+\.\d+) s +ratio (\d\.\d+) +\(start to first request (\d+\.\d+) s, "
        r"first request to last answer (\d+\.\d+) s, last answer to exit (\d+\.\d+) s\)",
        result.stdout,
    )
    assert 0 < float(whole) <= 1.05
    # The three parts are the run's wall time (each printed to the millisecond).
    assert abs(float(start) + float(serving) + float(end) - float(wall)) <= 0.01
    assert float(serving) >= 64 / 256 * 0.5  # one round of answers at least
    rows = re.findall(
        r"^  (1 task|4 tasks|4 evals in turn) +\d+\.\d+ s +÷ 1 task (\d+\.\d+) +max in flight (\d+)",
        result.stdout,
        re.MULTILINE,
    )
    assert [label for label, *_ in rows] == ["1 task", "4 tasks", "4 evals in turn"], result.stdout
    assert float(rows[0][1]) == 1.0
    assert all(0 < int(peak) <= 64 for *_, peak in rows)


def test_harness_proxy_prints_the_ratio_and_the_proxys_cpu_per_request():
    result = subprocess.run(
        [
            sys.executable, str(BENCHMARKS / "harness_proxy.py"),
            "--sections", "synthetic",
            "--latency", "0.01", "--workers", "4", "--requests", "40", "--repeat", "1",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.search(r"direct +40 req +\d+\.\d req/s", result.stdout), result.stdout
    proxied = re.findall(
        r"(proxy|cached) +40 req +\d+\.\d req/s +ratio (\d+\.\d+) +proxy CPU +(\d+) µs/req",
        result.stdout,
    )
    assert [label for label, *_ in proxied] == ["proxy", "cached"], result.stdout
    assert all(float(ratio) > 0 and int(cpu) > 0 for _, ratio, cpu in proxied)


def test_harness_proxy_quick_runs_a_real_task_direct_and_through_the_proxy():
    # Building the package's venv takes minutes: the harness tests build it, this reuses it.
    if not is_built("nvidia-mmath", "26.3"):
        pytest.skip("nvidia-mmath 26.3's venv is not built (tests/harness builds it)")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "harness_proxy.py"), "--quick"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run = r" +24 req +wall +\d+\.\d+ s +window +\d+\.\d+ s +(\d+\.\d) req/s"
    direct = re.search(r"direct" + run, result.stdout)
    proxy = re.search(
        r"proxy" + run + r" +ratio (\d+\.\d+) +wall ratio \d+\.\d+ +proxy CPU +(\d+) µs/req",
        result.stdout,
    )
    assert direct and proxy, result.stdout
    # 24 requests, 8 at a time, 0.2 s each: 40/s at most (give or take a 10 ms poll),
    # and no run three times slower.
    rates = [float(direct[1]), float(proxy[1])]
    assert all(13 < rate <= 42 for rate in rates), result.stdout
    assert float(proxy[2]) == pytest.approx(rates[1] / rates[0], abs=0.005)
    assert int(proxy[3]) > 0
    assert re.search(r"mmath\.mmath_en: proxy ÷ direct rate \d\.\d+ ", result.stdout)
