"""Does a whole `evalfleet run` keep an endpoint busy, and do an invocation's tasks share it?

    python benchmarks/endpoint_sharing.py [--samples 2048] [--sections whole tasks] [--repeat 1]

Each case is a real `evalfleet run` (a new process, from start to end: start-up, config,
planning, the store, the tasks, the results files) against the endpoint simulator, run
side by side in this one script:

- whole: one task of `--samples` samples, fixed latency 0.5 s, parallelism 256, so the
  ideal is exactly samples / 256 x 0.5 s. Prints ideal ÷ wall time (target: >= 0.93), and
  by the endpoint's clock where the rest went: start-up to its first request, serving (first
  request to last answer, against the ideal), and from its last answer to the exit.
- tasks: the same samples as one task, then as 4 tasks of a quarter each in one
  invocation (`mode: sequential`, the default), then as 4 `evalfleet eval` processes one
  after another (each task waiting for its own slowest answer, as the tasks of an
  invocation ran before they shared the endpoint). Log-normal answer times (median 0.5 s,
  sigma 0.8, seeded), parallelism 128. Prints each wall time ÷ the single task's and the
  most requests the endpoint saw at once. Target: 4 tasks <= 1.15 x one task, never more
  than 128 in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evalfleet.testing import run_simulator


def write_dataset(path: Path, first: int, count: int) -> None:
    with path.open("w") as rows:
        for i in range(first, first + count):
            rows.write(
                json.dumps({"id": f"s{i}", "prompt": f"Question {i}?", "answer": "x"}) + "\n"
            )


def write_config(path: Path, url: str, datasets: list[Path], parallelism: int, out: Path) -> None:
    tasks = "\n".join(
        f"    - {{name: part{i}, dataset: {{path: {data}}}, scorer: contains}}"
        for i, data in enumerate(datasets)
    )
    path.write_text(
        f"""\
execution: {{type: local, output_dir: {out}}}
target: {{api_endpoint: {{url: "{url}/v1/chat/completions", model_id: sim-model}}}}
evaluation:
  params: {{parallelism: {parallelism}, max_new_tokens: 16}}
  tasks:
{tasks}
"""
    )


def timed_run(config: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time of one `evalfleet run`, and when (time.time()) it was spawned."""
    spawned = time.time()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(config)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"evalfleet run failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, spawned


def one_eval_after_another(jobs: list[Path], env: dict[str, str]) -> float:
    started = time.perf_counter()
    for job in jobs:
        done = subprocess.run(
            [sys.executable, "-m", "evalfleet", "eval", "--job", str(job), "-q"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"evalfleet eval failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def whole(samples: int, repeat: int, tmp: Path, env: dict[str, str]) -> None:
    parallelism, latency = 256, 0.5
    ideal = samples / parallelism * latency
    data = tmp / "whole.jsonl"
    write_dataset(data, 0, samples)
    print(f"whole run: {samples} samples, latency {latency} s, parallelism {parallelism}, "
          f"ideal {ideal:.2f} s")  # fmt: skip
    with run_simulator(latency=latency) as sim:
        for run in range(repeat):
            config = tmp / f"whole-{run}.yaml"
            write_config(config, sim.base_url, [data], parallelism, tmp / f"out-whole-{run}")
            sim.reset_stats()
            wall, spawned = timed_run(config, env)
            seen = sim.stats()  # where the time went, by the endpoint's clock
            first, last = seen["first_request_at"], seen["last_answer_at"]
            print(
                f"  evalfleet run   {wall:6.2f} s   ratio {ideal / wall:5.3f}   (start to first "
                f"request {first - spawned:.3f} s, first request to last answer "
                f"{last - first:.3f} s, last answer to exit {spawned + wall - last:.3f} s)"
            )


def tasks(samples: int, repeat: int, tmp: Path, env: dict[str, str]) -> None:
    parallelism, parts = 128, 4
    single = tmp / "all.jsonl"
    write_dataset(single, 0, samples)
    quarter = samples // parts
    pieces = [tmp / f"part{i}.jsonl" for i in range(parts)]
    for i, piece in enumerate(pieces):
        write_dataset(piece, i * quarter, quarter)
    print(f"tasks: {samples} samples as 1 task and as {parts} tasks of {quarter}, log-normal "
          f"latency (median 0.5 s, sigma 0.8), parallelism {parallelism}")  # fmt: skip
    with run_simulator(latency=0.5, latency_sigma=0.8, seed=7) as sim:
        for run in range(repeat):
            out = tmp / f"out-tasks-{run}"
            shapes = {"1 task": [single], f"{parts} tasks": pieces}
            walls = {}
            for label, datasets in shapes.items():
                config = tmp / f"tasks-{run}-{len(datasets)}.yaml"
                write_config(
                    config, sim.base_url, datasets, parallelism, out / label.replace(" ", "")
                )
                sim.reset_stats()
                walls[label] = timed_run(config, env)[0]
                peak = sim.stats()["max_in_flight"]
                ratio = walls[label] / walls["1 task"]
                print(f"  {label:22} {walls[label]:6.2f} s   ÷ 1 task {ratio:5.3f}   "
                      f"max in flight {peak}")  # fmt: skip
            jobs = sorted((out / f"{parts}tasks").glob("*/part*/job.json"))
            for job in jobs:  # the same jobs again, from scratch
                (job.parent / "cache.sqlite").unlink(missing_ok=True)
            sim.reset_stats()
            wall = one_eval_after_another(jobs, env)
            print(
                f"  {parts} evals in turn      {wall:6.2f} s   ÷ 1 task "
                f"{wall / walls['1 task']:5.3f}   max in flight {sim.stats()['max_in_flight']}"
            )


def with_bytecode(env: dict[str, str]) -> dict[str, str]:
    """The runs' environment, with evalfleet's bytecode compiled beforehand (beside its
    sources, where an installed wheel has it). A checkout used with
    PYTHONDONTWRITEBYTECODE=1 (some shells and CI images set it) would otherwise compile
    every evalfleet module from source at each start, ~0.1 s that no installed evalfleet
    pays. (Not PYTHONPYCACHEPREFIX: there Python looks for every package's bytecode, and
    the first run would compile pydantic, click and yaml too.)"""
    import evalfleet

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(evalfleet.__file__).parent)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--sections", nargs="+", default=["whole", "tasks"],
                        choices=["whole", "tasks"])  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = with_bytecode({**os.environ, "EVALFLEET_HOME": str(Path(tmp) / "home")})
        if "whole" in args.sections:
            whole(args.samples, args.repeat, Path(tmp), env)
        if "tasks" in args.sections:
            tasks(args.samples, args.repeat, Path(tmp), env)


if __name__ == "__main__":
    main()
