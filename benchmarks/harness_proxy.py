"""Does the adapter proxy slow a harness down, and what does each request cost it?

    python benchmarks/harness_proxy.py [--sections synthetic tasks] [--repeat 2]
        synthetic: [--latency 0.05] [--workers 16 64] [--requests 2000]
                   [--client requests|httpx|openai]
        tasks:     [--tasks mmath.mmath_en bfcl.bfclv3_ast] [--task-limit 120]
                   [--task-parallelism 16] [--task-latency 0.2]
    python benchmarks/harness_proxy.py --quick   # the tasks section, mmath only, small

Two sections, both by default.

Synthetic. Starts the endpoint simulator (its own process) with a fixed latency and no
capacity limit, and a load generator shaped like a framework harness: its own process, a
thread pool of `workers` threads, each sending chat bodies one after the other through a
blocking client (`requests` by default, as most harnesses use; `httpx` or the `openai`
SDK on request).
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

Tasks. A real framework package task, the acceptance's measure: its pinned package's
venv (`ensure_environment`, built on first use), its command as nemo-evaluator renders it
(`render_command`), run by bash with the venv first on PATH and OPENAI_API_KEY=x, against
a simulator with `--task-latency` and a fixed answer. Side by side, `--repeat` times (the
order swapped every other round):
- direct: the command with the simulator's `/v1/chat/completions` as its endpoint URL;
- proxy: the same command with an adapter proxy's URL instead, the proxy set up as
  `evalfleet eval` sets it (a fresh response cache, a request log, the default job's
  interceptors, the task's parallelism) but in a process of its own, so that its CPU is
  that process's (`time.process_time()` there) and this one's polling of the simulator
  cannot take its GIL.
For each: the harness's wall time (its start-up and scoring included: seconds of imports
that swing with the machine's load), the request window (from the first request the
simulator counted to the last it completed, read by polling its `/stats` every 10 ms) and
the achieved rate, requests ÷ window; for the proxy its rate ÷ direct's, its wall time
÷ direct's and its CPU per request. `--quick` takes ~10 s.
Target: proxy >= 0.95 of direct, in both sections.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evalfleet.harness.proxy import AdapterProxy, ProxyThread, Upstream, start_proxy_thread
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
    """The proxy thread's CPU seconds, read from its own clock: /proc counts in 10 ms
    ticks, coarser than a short run's whole cost (40 cached answers take ~6 ms)."""
    ident = proxy._thread.ident
    assert ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


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


def synthetic(args: argparse.Namespace) -> None:
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


# --------------------------------------------------------------------------- tasks

# A final answer mmath can extract, so its scoring runs as it would on a real model.
TASK_ANSWER = "Let me think. The answer is \\boxed{204}."
POLL_INTERVAL_S = 0.01


def serve_proxy(upstream_url: str, parallelism: int, cache: str, log: str) -> None:
    """The proxy's own process: "READY <url>", serve until stdin closes, then its stats."""
    from evalfleet.engine.interceptors import build_interceptors
    from evalfleet.engine.loop import run

    async def serve() -> dict[str, Any]:
        model = Upstream(upstream_url, parallelism=parallelism)
        # A job without interceptor settings still has the (empty) interceptors, as here.
        interceptors = build_interceptors({})
        async with AdapterProxy(
            model, cache=cache, interceptors=interceptors, log_path=log
        ) as proxy:
            print(f"READY {proxy.url}", flush=True)
            loop = asyncio.get_running_loop()
            # Each line asks for this process's CPU seconds (to the µs: /proc's ticks are
            # 10 ms, a few requests' worth); end of input ends the proxy.
            while await loop.run_in_executor(None, sys.stdin.readline):
                print(time.process_time(), flush=True)
            return proxy.stats()

    print(json.dumps(run(serve())), flush=True)


class ProxyProcess:
    """`with ProxyProcess(...) as proxy:` an adapter proxy in a child process."""

    def __init__(self, upstream_url: str, parallelism: int, cache: Path, log: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-proxy", upstream_url, str(parallelism),
             str(cache), str(log)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            self.process.kill()
            raise SystemExit(f"the proxy process did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        self.stats: dict[str, Any] = {}

    def cpu(self) -> float:
        """The proxy process's CPU seconds so far (user + system, all its threads)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("cpu\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        out = self.process.stdout.read().strip()
        self.process.wait(timeout=60)
        if out:
            self.stats = json.loads(out.splitlines()[-1])


class StatsPoller:
    """`GET /stats` of the simulator over one kept-alive connection."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=30
        )

    def get(self) -> dict[str, Any]:
        for attempt in range(2):
            try:
                self.connection.request("GET", "/stats")
                stats: dict[str, Any] = json.loads(self.connection.getresponse().read())
                return stats
            except (http.client.HTTPException, OSError):
                self.connection.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")


def run_watched(
    command: str, env: dict[str, str], cwd: Path, poller: StatsPoller
) -> tuple[float, float | None, int]:
    """Run the harness command; (wall seconds, request window seconds, requests counted).

    The window runs from the poll that first sees a request to the poll that sees the
    last completion: each end is late by half a poll on average, so the two lags cancel."""
    with (cwd / "harness.log").open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["bash", "-c", command], env=env, cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        first = last = None
        completed = 0
        while True:
            exited = process.poll() is not None
            before = time.perf_counter()
            stats = poller.get()
            seen = (before + time.perf_counter()) / 2
            if first is None and stats["requests"]:
                first = seen
            if stats["completed"] != completed:
                completed, last = stats["completed"], seen
            if exited:
                break
            time.sleep(POLL_INTERVAL_S)
        wall = time.perf_counter() - started
    if process.returncode != 0:
        tail = (cwd / "harness.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"the harness exited with {process.returncode}: {tail}")
    window = None if first is None or last is None or last <= first else last - first
    return wall, window, int(stats["requests"])


def harness_env(venv: Path) -> dict[str, str]:
    """What evalfleet eval gives the harness (harness/run.py), with the key the brief sets."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["OPENAI_API_KEY"] = "x"
    return env


def task_run_config(
    name: str, url: str, output_dir: Path, limit: int, parallelism: int
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit_samples": limit, "parallelism": parallelism}
    if name.startswith("mmath."):
        params["extra"] = {"n_samples": 1}  # one request per problem
    return {
        "config": {"type": name, "output_dir": str(output_dir), "params": params},
        "target": {"api_endpoint": {"url": url, "model_id": "sim-model", "type": "chat"}},
    }


class TaskCase:
    """One task's side-by-side runs, and what they measured."""

    def __init__(self, name: str, limit: int, parallelism: int, tmp: Path) -> None:
        from evalfleet.harness.environment import ensure_environment
        from evalfleet.harness.frameworks import framework

        self.name, self.limit, self.parallelism, self.tmp = name, limit, parallelism, tmp
        self.harness, self.task = name.split(".", 1)
        pinned = framework(self.harness)  # the package and version evalfleet runs
        self.venv = ensure_environment(pinned.package, pinned.version, log=print)
        self.env = harness_env(self.venv)
        self.runs = 0
        self.ratios: list[float] = []
        self.cpu: list[float] = []

    def command(self, url: str) -> tuple[str, Path]:
        from evalfleet.harness.command import render_command

        self.runs += 1
        output_dir = self.tmp / f"{self.harness}-{self.task}-{self.runs}"
        output_dir.mkdir()
        config = task_run_config(self.name, url, output_dir, self.limit, self.parallelism)
        return render_command(self.harness, self.task, config), output_dir

    def direct(self, sim: Any, poller: StatsPoller) -> dict[str, Any]:
        command, output_dir = self.command(f"{sim.base_url}/v1/chat/completions")
        sim.reset_stats()
        wall, window, requests = run_watched(command, self.env, output_dir, poller)
        return {"wall": wall, "window": window, "requests": requests, "proxy_cpu": None}

    def proxied(self, sim: Any, poller: StatsPoller) -> dict[str, Any]:
        upstream = f"{sim.base_url}/v1/chat/completions"
        run = self.tmp / f"proxy-{self.harness}-{self.task}-{self.runs}"
        run.mkdir()  # a fresh response cache each time: every request goes upstream
        with ProxyProcess(upstream, self.parallelism, run / "cache.sqlite", run / "log") as proxy:
            command, output_dir = self.command(proxy.url)
            sim.reset_stats()
            before = proxy.cpu()
            wall, window, requests = run_watched(command, self.env, output_dir, poller)
            spent = proxy.cpu() - before
        stats = proxy.stats
        assert stats["forwarded"] == stats["answered"] == requests and not stats["errors"], stats
        return {"wall": wall, "window": window, "requests": requests, "proxy_cpu": spent}


def show(label: str, result: dict[str, Any], baseline: dict[str, Any] | None) -> float | None:
    """Print one run's line; returns its rate (None without a request window)."""
    requests, window, wall = result["requests"], result["window"], result["wall"]
    rate = requests / window if window else None
    text = f"  {label:7} {requests:5d} req  wall {wall:6.2f} s  "
    text += f"window {window:5.2f} s  {rate:6.1f} req/s  " if rate else "window    n/a  "
    if baseline is not None:
        base_rate = baseline["requests"] / baseline["window"] if baseline["window"] else None
        if rate and base_rate:
            text += f"ratio {rate / base_rate:5.3f}  "
        text += f"wall ratio {wall / baseline['wall']:5.3f}  "
    if result["proxy_cpu"] is not None:
        text += f"proxy CPU {result['proxy_cpu'] / requests * 1e6:4.0f} µs/req  "
    print(f"{text}(load {os.getloadavg()[0]:.1f})")
    return rate


def tasks(args: argparse.Namespace) -> None:
    latency, limit, parallelism = args.task_latency, args.task_limit, args.task_parallelism
    with (
        run_simulator(latency=latency, default_answer=TASK_ANSWER) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        poller = StatsPoller(sim.base_url)
        cases = [TaskCase(name, limit, parallelism, Path(tmp)) for name in args.tasks]
        for case in cases:
            print(
                f"{case.name}: limit {limit}, parallelism {parallelism}, "
                f"simulator latency {latency:g} s (at most {parallelism / latency:.0f} req/s)"
            )
            for round_ in range(args.repeat):
                # Swapped every other round, so a machine slowing down or speeding up
                # during the run favours neither.
                order = ("direct", "proxy") if round_ % 2 == 0 else ("proxy", "direct")
                results = {
                    label: (case.direct if label == "direct" else case.proxied)(sim, poller)
                    for label in order
                }
                if results["proxy"]["requests"] != results["direct"]["requests"]:
                    raise SystemExit(f"{case.name}: the two runs sent different requests")
                base = show("direct", results["direct"], None)
                rate = show("proxy", results["proxy"], results["direct"])
                if rate and base:
                    case.ratios.append(rate / base)
                proxy = results["proxy"]
                case.cpu.append(proxy["proxy_cpu"] / proxy["requests"])
        for case in cases:
            ratios = " ".join(f"{ratio:.3f}" for ratio in case.ratios)
            median = f"{statistics.median(case.ratios):.3f}" if case.ratios else "n/a"
            print(
                f"{case.name}: proxy ÷ direct rate {median} (median of {ratios or 'none'}), "
                f"proxy CPU {statistics.mean(case.cpu) * 1e6:.0f} µs/req; target >= 0.95"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sections", nargs="+", choices=("synthetic", "tasks"), default=["synthetic", "tasks"]
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--client", choices=("requests", "httpx", "openai"), default="requests")
    parser.add_argument("--tasks", nargs="+", default=["mmath.mmath_en", "bfcl.bfclv3_ast"])
    parser.add_argument("--task-limit", type=int, default=120)
    parser.add_argument("--task-parallelism", type=int, default=16)
    parser.add_argument("--task-latency", type=float, default=0.2)
    parser.add_argument(
        "--quick", action="store_true",
        help="the tasks section only: mmath.mmath_en, limit 24, parallelism 8, one round",
    )  # fmt: skip
    parser.add_argument("--loadgen", nargs=4, metavar=("URL", "WORKERS", "COUNT", "CLIENT"))
    parser.add_argument(
        "--serve-proxy", nargs=4, metavar=("UPSTREAM", "PARALLELISM", "CACHE", "LOG")
    )
    args = parser.parse_args()
    if args.loadgen:
        url, workers, count, client = args.loadgen
        load_generator(url, int(workers), int(count), client)
        return
    if args.serve_proxy:
        upstream, parallelism, cache, log = args.serve_proxy
        serve_proxy(upstream, int(parallelism), cache, log)
        return
    if args.quick:
        args.sections, args.tasks, args.repeat = ["tasks"], ["mmath.mmath_en"], 1
        args.task_limit, args.task_parallelism = 24, 8
    if "synthetic" in args.sections:
        synthetic(args)
    if "tasks" in args.sections:
        tasks(args)


if __name__ == "__main__":
    main()
