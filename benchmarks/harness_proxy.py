"""Does the adapter proxy slow a harness down, and what does each request cost it?

    python benchmarks/harness_proxy.py [--latency 0.05] [--workers 16 64] [--requests 2000]
                                       [--client requests|httpx|openai] [--repeat 2]

Starts the endpoint simulator (its own process) with a fixed latency and no capacity limit,
and a load generator shaped like a framework harness: its own process, a thread pool of
`workers` threads, each sending chat bodies one after the other through a blocking client
(`requests` by default, as most harnesses use; `httpx` or the `openai` SDK on request).
For each worker count it runs, side by side:
- direct: the load generator against the simulator's URL;
- proxy: the same load through the adapter proxy (`start_proxy_thread`, in this process
  as `evalfleet eval` runs it, with a fresh response cache and a request log), every
  request a distinct body so each one goes upstream;
- cached: the same load again through a new proxy over that cache, as a resumed harness
  sends it: every answer comes from the cache, nothing goes upstream.
It prints the achieved requests/s, the ratio proxy ÷ direct (and cached ÷ direct), and the
proxy's CPU per request: its thread's user + system time (Linux /proc) over the run divided
by the requests, with the load generator's and the simulator's beside it (all three share
the machine). `--repeat N` alternates the cases N times: this machine's speed drifts.
Target: proxy >= 0.95 of direct.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

from evalfleet.harness.proxy import ProxyThread, Upstream, start_proxy_thread
from evalfleet.testing import run_simulator


def load_generator(url: str, workers: int, count: int, client: str) -> None:
    """The harness side (run in a child process): `workers` threads share `count` requests."""
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def session():
        if not hasattr(local, "client"):
            if client == "httpx":
                import httpx

                local.client = httpx.Client(timeout=120, trust_env=False)
            elif client == "openai":
                import openai

                local.client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
            else:
                import requests

                local.client = requests.Session()
                local.client.trust_env = False
        return local.client

    def one(i: int) -> bool:
        messages = [{"role": "user", "content": f"Question number {i}?"}]
        if client == "openai":
            reply = session().chat.completions.create(
                model="sim-model", messages=messages, max_tokens=16
            )
            return bool(reply.choices)
        body = {"model": "sim-model", "messages": messages, "max_tokens": 16}
        response = session().post(f"{url}/chat/completions", json=body)
        return response.status_code == 200 and bool(response.json()["choices"])

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        ok = sum(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    print(json.dumps({"ok": ok, "elapsed": elapsed}))


def run_load(url: str, workers: int, count: int, client: str) -> tuple[float, float]:
    """(requests/s, load generator CPU seconds) of one load-generator run against `url`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, __file__, "--loadgen", url, str(workers), str(count), client],
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    if outcome["ok"] != count:
        raise SystemExit(f"{outcome['ok']} of {count} requests succeeded: {result.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return count / outcome["elapsed"], cpu


def cpu_of(path: str) -> float:
    """User + system CPU seconds of a process or thread from its /proc stat file."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(proxy: ProxyThread) -> float:
    return cpu_of(f"/proc/self/task/{proxy._thread.native_id}/stat")


def direct(url: str, workers: int, count: int, client: str) -> tuple[float, float, None]:
    return (*run_load(url, workers, count, client), None)


def proxied(
    upstream: Upstream, cache: Path, log: Path, workers: int, count: int, client: str, sent: int
) -> tuple[float, float, float]:
    """The load through a new proxy over `cache`; `sent` of its requests must go upstream."""
    with start_proxy_thread(upstream, cache=cache, log_path=log) as proxy:
        before = thread_cpu(proxy)
        rate, load_cpu = run_load(proxy.url, workers, count, client)
        spent = thread_cpu(proxy) - before
        stats = proxy.stats()
    assert (stats["forwarded"], stats["cached"]) == (sent, count - sent), stats
    return rate, load_cpu, spent


def measure(label: str, run, count: int, sim_pid: int, baseline: float | None) -> float:
    sim_cpu = cpu_of(f"/proc/{sim_pid}/stat")
    rate, load_cpu, proxy_cpu = run()
    sim_cpu = cpu_of(f"/proc/{sim_pid}/stat") - sim_cpu
    ratio = "" if baseline is None else f"ratio {rate / baseline:5.3f}  "
    proxy = "" if proxy_cpu is None else f"proxy CPU {proxy_cpu / count * 1e6:4.0f} µs/req  "
    print(
        f"  {label:7} {count:6d} req  {rate:8.1f} req/s  {ratio}{proxy}"
        f"(harness {load_cpu / count * 1e6:4.0f}, simulator {sim_cpu / count * 1e6:4.0f} µs/req, "
        f"load {os.getloadavg()[0]:.1f})"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--client", choices=("requests", "httpx", "openai"), default="requests")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--loadgen", nargs=4, metavar=("URL", "WORKERS", "COUNT", "CLIENT"))
    args = parser.parse_args()
    if args.loadgen:
        url, workers, count, client = args.loadgen
        load_generator(url, int(workers), int(count), client)
        return

    count, client = args.requests, args.client
    with run_simulator(latency=args.latency) as sim, tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            print(f"{workers} workers ({client}): ideal {workers / args.latency:.0f} req/s")
            upstream = Upstream(
                f"{sim.base_url}/v1/chat/completions", parallelism=workers, timeout_s=120
            )
            for run in range(args.repeat):
                cache = Path(tmp) / f"cache-{workers}-{run}.sqlite"
                log = Path(tmp) / f"samples-{workers}-{run}.jsonl"
                load = (workers, count, client)
                baseline = measure(
                    "direct", partial(direct, f"{sim.base_url}/v1", *load), count, sim.pid, None
                )
                measure(
                    "proxy", partial(proxied, upstream, cache, log, *load, count), count,
                    sim.pid, baseline,
                )  # fmt: skip
                measure(
                    "cached", partial(proxied, upstream, cache, log, *load, 0), count,
                    sim.pid, baseline,
                )  # fmt: skip


if __name__ == "__main__":
    main()
