"""Does the engine keep an endpoint saturated, and what does each request cost the client?

    python benchmarks/engine_throughput.py [--latency 0.2] [--rounds 15] [--parallelism 64 256 1024]

Starts the endpoint simulator (its own process) with a fixed latency and no capacity
limit, so the ideal rate is exactly `parallelism / latency`. For each parallelism it runs,
side by side in this one process:
- evalfleet: the whole engine (`evaluate()`: request building, cache lookups, one SQLite
  row per answer, scoring, results files) on a custom task of `parallelism x rounds` samples,
  half of them answered right;
- +aiohttp: the same engine with its aiohttp transport (`EVALFLEET_HTTP=aiohttp`, what it
  uses behind a proxy);
- httpx: a plain `httpx.AsyncClient` loop (semaphore + gather) sending the same bodies,
  as a reference point.
It prints achieved requests/s ÷ ideal, for the engine over two spans:
- busy: from the first request sent to the last answer stored, i.e. how well the engine
  kept the endpoint saturated while it used it;
- whole: from calling `evaluate()` to the results files written, which adds loading the
  dataset (~50-60 ms for 15,000 lines) and summing up the scores and writing the files
  (~60 ms for 15,000 samples; most scoring happens while the last answers arrive): fixed
  costs a 0.2 s latency magnifies (`--latency 1` shows them next to a slower endpoint);
and client CPU microseconds per request (user + system time of this process over the run,
divided by the requests), with the simulator's CPU per request beside it (it shares the
machine). `--repeat N` runs each case N times: this machine's speed drifts by up to ±10 %
from one minute to the next, so single runs mislead.
Targets on a 2-core machine: ratio >= 0.95 at 256 and >= 0.90 at 1024; <= 300 µs/request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from functools import partial
from pathlib import Path

from evalfleet.contract.spec import JobSpec
from evalfleet.engine.loop import loop_name
from evalfleet.engine.loop import run as run_loop
from evalfleet.engine.runner import RunProgress, evaluate
from evalfleet.testing import run_simulator


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_dataset(path: Path, count: int) -> None:
    """Half the samples are answered right (the simulator echoes the prompt), so the
    scores vary and the statistics cost what they cost on a real task."""
    with path.open("w") as handle:
        for i in range(count):
            answer = f"number {i}?" if i % 2 == 0 else "not in the echo"
            handle.write(
                json.dumps({"id": i, "prompt": f"Question number {i}?", "answer": answer}) + "\n"
            )


async def run_engine(
    base_url: str, dataset: Path, out: Path, parallelism: int
) -> tuple[int, float]:
    """(requests sent, seconds from the first request to the last answer stored)."""
    job = JobSpec.model_validate(
        {
            "invocation_id": "bench",
            "job_id": f"bench.{parallelism}",
            "task": "bench",
            "endpoint": {"url": f"{base_url}/v1/chat/completions", "model_id": "sim-model"},
            "params": {"parallelism": parallelism, "max_retries": 0, "max_new_tokens": 16},
            "output_dir": str(out),
            "dataset": {"path": str(dataset)},
            "scorer": {"name": "contains"},
        }
    )
    progress = RunProgress()
    results, _ = await evaluate(job, progress=progress)
    assert progress.fetch_started is not None and progress.fetch_ended is not None
    assert results["counts"]["errors"] == 0, results["errors_by_reason"]
    assert 0.4 < results["metrics"]["accuracy"]["value"] < 0.6, results["metrics"]
    return results["requests"]["requests"], progress.fetch_ended - progress.fetch_started


async def run_httpx(base_url: str, count: int, parallelism: int) -> int:
    import httpx

    limits = httpx.Limits(max_connections=parallelism, max_keepalive_connections=parallelism)
    gate = asyncio.Semaphore(parallelism)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(i: int) -> None:
            async with gate:
                body = {
                    "model": "sim-model",
                    "messages": [{"role": "user", "content": f"Question number {i}?"}],
                    "max_tokens": 16,
                }
                response = await client.post(f"{base_url}/v1/chat/completions", json=body)
                response.raise_for_status()
                response.json()

        await asyncio.gather(*(one(i) for i in range(count)))
    return count


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of another process (Linux /proc), to show the simulator's share."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label: str, run, ideal: float, server_pid: int) -> None:
    cpu, wall = cpu_seconds(), time.perf_counter()
    server_cpu = process_cpu_seconds(server_pid)
    outcome = run_loop(run())
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    server_cpu = process_cpu_seconds(server_pid) - server_cpu
    sent, busy = outcome if isinstance(outcome, tuple) else (outcome, None)
    rate = sent / wall
    shown = "" if busy is None else f"busy {sent / busy / ideal:5.3f}  "
    print(
        f"  {label:10} {sent:6d} req in {wall:6.2f} s  {rate:8.1f} req/s  ratio {shown}"
        f"whole {rate / ideal:5.3f}  client CPU {cpu / sent * 1e6:4.0f} µs/req  "
        f"(simulator {server_cpu / sent * 1e6:4.0f} µs/req, load {os.getloadavg()[0]:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=15, help="requests per connection")
    parser.add_argument("--parallelism", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--skip-httpx", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each engine case")
    args = parser.parse_args()
    with run_simulator(latency=args.latency) as sim, tempfile.TemporaryDirectory() as tmp:
        for parallelism in args.parallelism:
            count = parallelism * args.rounds
            ideal = parallelism / args.latency
            dataset = Path(tmp) / f"bench-{parallelism}.jsonl"
            write_dataset(dataset, count)
            print(f"parallelism {parallelism}: ideal {ideal:.0f} req/s ({loop_name()} loop)")
            for run in range(args.repeat):
                measure(
                    "evalfleet",
                    partial(
                        run_engine,
                        sim.base_url,
                        dataset,
                        Path(tmp) / f"out-{parallelism}-{run}",
                        parallelism,
                    ),
                    ideal,
                    sim.process.pid,
                )
            os.environ["EVALFLEET_HTTP"] = "aiohttp"
            try:
                measure(
                    "+aiohttp",
                    partial(
                        run_engine,
                        sim.base_url,
                        dataset,
                        Path(tmp) / f"out-aiohttp-{parallelism}",
                        parallelism,
                    ),
                    ideal,
                    sim.process.pid,
                )
            finally:
                del os.environ["EVALFLEET_HTTP"]
            if not args.skip_httpx:
                # httpx needs ~20 ms of CPU per request at this concurrency here: two rounds
                # are enough to measure it and keep the benchmark to a few minutes.
                measure(
                    "httpx",
                    partial(run_httpx, sim.base_url, parallelism * 2, parallelism),
                    ideal,
                    sim.process.pid,
                )


if __name__ == "__main__":
    main()
