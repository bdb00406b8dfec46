"""How long the commands users type most take to answer, next to a bare Python start.

    python benchmarks/cli_startup.py [--runs 15]

Prints the median wall time of each command and its ratio to `python -c pass` measured
in the same run. `evalfleet --help` and `evalfleet ls runs` must stay under 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def median_seconds(argv: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def seed_store(home: str, count: int) -> None:
    os.environ["EVALFLEET_HOME"] = home
    from evalfleet.store import InvocationStore, NewJob

    with InvocationStore(home) as store:
        for i in range(count):
            store.create_invocation(
                executor="local", deployment_type="none", model=f"model-{i}",
                output_dir=f"/tmp/r/{i}", config={},
                jobs=[NewJob(task="gsm8k", output_dir="x"), NewJob(task="ifeval", output_dir="y")],
            )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--invocations", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        seed_store(home, args.invocations)
        env = {**os.environ, "EVALFLEET_HOME": home}
        cli = [sys.executable, "-m", "evalfleet"]
        baseline = median_seconds([sys.executable, "-c", "pass"], env, args.runs)
        print(f"python -c pass                 {baseline * 1000:7.1f} ms   1.00x")
        for label, argv in [
            ("evalfleet --help", [*cli, "--help"]),
            (f"evalfleet ls runs ({args.invocations})", [*cli, "ls", "runs"]),
            ("evalfleet ls runs --json", [*cli, "ls", "runs", "--json"]),
        ]:
            seconds = median_seconds(argv, env, args.runs)
            verdict = "ok" if seconds < 0.3 else "OVER 0.3 s"
            print(f"{label:30} {seconds * 1000:7.1f} ms  {seconds / baseline:5.2f}x  {verdict}")


if __name__ == "__main__":
    main()
