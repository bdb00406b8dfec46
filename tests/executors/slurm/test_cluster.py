"""The Slurm executor against a real single-node Slurm cluster (local sbatch).

Each run deploys the endpoint simulator as a `generic` server with `srun` inside the batch
job and evaluates small custom tasks, so everything is real: sbatch, squeue, scancel, the
batch script's traps, its `--dependency` chain and the model server's process.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from evalfleet import api

from .cluster_helpers import (
    PY,
    active_jobs,
    all_in,
    chain_jobs,
    server_processes,
    slurm_config,
    states,
    wait_for,
    wait_gone,
    wait_no_jobs,
    write_dataset,
)

pytestmark = pytest.mark.usefixtures("slurm_cluster")


@pytest.fixture
def fixed_wheel() -> None:
    """The jobs install this evalfleet's real wheel (the bootstrap runs on the cluster)."""


def _run(cli, config: Path) -> str:
    result = cli("run", "--config", str(config))
    assert result.code == 0, result.err
    return result.out.strip().splitlines()[-1]


def test_two_tasks_with_a_generic_server_run_to_success(cli, tmp_path, free_port) -> None:
    auto_export = "  auto_export: {destinations: [local]}"
    invocation_id = _run(cli, slurm_config(tmp_path, free_port, execution=auto_export))
    summary = Path.cwd() / "evalfleet_exports" / "summary.json"
    assert not summary.exists()  # run returns once submitted: nothing has ended yet

    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "SUCCESS"], rows
    # the status that saw the end exported the invocation
    exported = json.loads(summary.read_text())["rows"]
    assert [(r["invocation_id"], r["task"]) for r in exported] == [
        (invocation_id, "adds"), (invocation_id, "more"),
    ]  # fmt: skip
    assert [row["detail"] for row in rows] == ["accuracy 1.0000 (95% CI 1.000\u20131.000, n=4)"] * 2
    root = tmp_path / "results" / invocation_id
    for task in ("adds", "more"):
        results = json.loads((root / task / "results.json").read_text())
        assert results["metrics"]["accuracy"]["value"] == 1.0
        assert len((root / task / "samples.jsonl").read_text().splitlines()) == 4
    assert (root / "config.yaml").is_file()
    (slurm_id,) = chain_jobs(invocation_id)[f"evalfleet-{invocation_id}.sbatch"]
    assert "all 2 task(s) succeeded" in (root / f"slurm-{slurm_id}.out").read_text()

    listed = json.loads(cli("ls", "runs", "--json").out)
    assert [(r["invocation_id"], r["executor"], r["tasks"]) for r in listed] == [
        (invocation_id, "slurm", ["adds", "more"])
    ]
    lines = cli("logs", invocation_id).out.splitlines()
    assert f"[slurm {slurm_id}] evalfleet: the model server is ready" in "\n".join(lines)
    assert any(line.startswith("[adds] ") and "done:" in line for line in lines)
    assert any(line.startswith("[server] READY http://127.0.0.1:") for line in lines)
    assert not wait_no_jobs(invocation_id)  # the job ends once it has stopped the server
    assert not server_processes(free_port), "the model server outlived its job"


def test_a_secret_reaches_the_job_but_no_file(cli, tmp_path, free_port, isolated) -> None:
    secret = "s3cret-7f1d2c"
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    config = slurm_config(
        tmp_path,
        free_port,
        execution=f"  env_vars: {{MY_TOKEN: {secret}}}",
        # The server starts only if the job's environment holds the value (by its hash).
        command_prefix=f'test "$(printf %s "$MY_TOKEN" | sha256sum | cut -c1-16)" = {digest} && exec ',
    )
    invocation_id = _run(cli, config)
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "SUCCESS"], rows
    assert not wait_no_jobs(invocation_id)
    root = tmp_path / "results" / invocation_id
    script = (root / f"evalfleet-{invocation_id}.sbatch").read_text()
    assert ': "${MY_TOKEN:?' in script
    for path in [*root.rglob("*"), *isolated.rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_logs_follow_shows_the_run_as_it_goes_and_ends_with_it(cli, tmp_path, free_port) -> None:
    import threading

    invocation_id = _run(cli, slurm_config(tmp_path, free_port, sim_args="--latency 0.5"))
    lines: list[str] = []
    follower = threading.Thread(
        target=lambda: lines.extend(api.logs(invocation_id, follow=True)), daemon=True
    )
    follower.start()
    follower.join(timeout=120)
    assert not follower.is_alive(), "logs --follow did not end with the job"
    text = "\n".join(lines)
    assert "evalfleet: task adds" in text and "all 2 task(s) succeeded" in text
    assert text.index("task adds (") < text.index("task more (")
    assert states(api.status([invocation_id])) == ["SUCCESS", "SUCCESS"]


def test_job_per_task_gives_each_task_its_own_job(cli, tmp_path, free_port) -> None:
    # Both servers use the same port: --exclusive keeps the two jobs off the node together.
    config = slurm_config(
        tmp_path,
        free_port,
        execution="  job_per_task: true\n  sbatch_extra_flags: {exclusive: true}",
    )
    invocation_id = _run(cli, config)
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "SUCCESS"], rows
    chains = chain_jobs(invocation_id)
    assert sorted(chains) == [
        f"evalfleet-{invocation_id}-adds.sbatch",
        f"evalfleet-{invocation_id}-more.sbatch",
    ]
    assert all(len(ids) == 1 for ids in chains.values())
    assert (tmp_path / "results" / invocation_id / "adds" / "logs" / "server.log").is_file()


def test_a_failing_task_is_failed_not_requeued_and_resume_reruns_only_it(
    cli, tmp_path, free_port
) -> None:
    config = slurm_config(tmp_path, free_port, missing=("more",))
    invocation_id = _run(cli, config)
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "FAILED"], rows
    # The reason the task's `evalfleet eval` gave, not only its exit code.
    assert rows[1]["detail"].startswith("dataset.path: cannot read "), rows[1]
    assert rows[1]["detail"].endswith("more.jsonl: No such file or directory"), rows[1]
    # A real failure queues nothing: one job in the chain, none left in the queue.
    assert not wait_no_jobs(invocation_id)
    assert list(chain_jobs(invocation_id).values()) == [
        [chain_jobs(invocation_id)[f"evalfleet-{invocation_id}.sbatch"][0]]
    ]
    assert not active_jobs(invocation_id)

    write_dataset(tmp_path / "data", "more")  # the missing file, now present
    result = cli("resume", invocation_id)
    assert result.code == 0, result.err
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS", "SUCCESS"], rows
    assert len(chain_jobs(invocation_id)[f"evalfleet-{invocation_id}.sbatch"]) == 2
    # The task that had succeeded ran once; the resumed job skipped it.
    eval_log = tmp_path / "results" / invocation_id / "adds" / "logs" / "eval.log"
    assert eval_log.read_text().count("samples x 1 repeats") == 1
    again = cli("resume", invocation_id)
    assert again.code == 2 and "nothing to resume" in again.err


def test_kill_while_pending_cancels_the_job(cli, tmp_path, free_port) -> None:
    config = slurm_config(tmp_path, free_port, execution="  sbatch_extra_flags: {begin: now+1hour}")
    invocation_id = _run(cli, config)
    rows = wait_for(invocation_id, all_in("PENDING"), timeout_s=10)
    assert "(BeginTime)" in rows[0]["detail"]
    assert active_jobs(invocation_id)

    result = cli("kill", invocation_id)
    assert result.code == 0, result.err
    assert result.out.startswith("stopped Slurm job ")
    assert not active_jobs(invocation_id)
    assert states(api.status([invocation_id])) == ["KILLED", "KILLED"]
    assert cli("kill", invocation_id).out.strip() == "nothing was running"


def test_kill_after_a_resume_cancels_the_resumed_job(cli, tmp_path, free_port) -> None:
    config = slurm_config(tmp_path, free_port, execution="  sbatch_extra_flags: {begin: now+1hour}")
    invocation_id = _run(cli, config)
    assert cli("kill", invocation_id).code == 0
    resumed = cli("resume", invocation_id)
    assert resumed.code == 0, resumed.err
    first, second = chain_jobs(invocation_id)[f"evalfleet-{invocation_id}.sbatch"]
    assert [line.split("|")[0] for line in active_jobs(invocation_id)] == [second]

    result = cli("kill", invocation_id)
    assert (result.code, result.out.strip()) == (0, f"stopped Slurm job {second}")
    assert not active_jobs(invocation_id)
    assert "JobState=CANCELLED" in _scontrol_state(first)


def test_a_controller_that_does_not_answer_is_unknown_not_failed(
    cli, slurm_cluster, tmp_path, free_port, monkeypatch
) -> None:
    config = slurm_config(tmp_path, free_port, execution="  sbatch_extra_flags: {begin: now+1hour}")
    invocation_id = _run(cli, config)
    # The same cluster, seen through a config whose controller port nobody listens on.
    text = slurm_cluster.conf.read_text()
    port = re.search(r"^SlurmctldPort=(\d+)$", text, re.M).group(1)
    elsewhere = tmp_path / "slurm.conf"
    elsewhere.write_text(text.replace(f"SlurmctldPort={port}", f"SlurmctldPort={free_port}"))
    monkeypatch.setenv("SLURM_CONF", str(elsewhere))

    rows = api.status([invocation_id])
    assert states(rows) == ["UNKNOWN", "UNKNOWN"], rows
    assert "Unable to contact slurm controller" in rows[0]["detail"]
    killed = cli("kill", invocation_id)
    assert killed.code == 1 and "Unable to contact slurm controller" in killed.err
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    assert states(api.status([invocation_id])) == ["PENDING", "PENDING"]
    assert cli("kill", invocation_id).code == 0
    assert not active_jobs(invocation_id)


def test_kill_while_running_stops_the_server_and_twice_is_harmless(
    cli, tmp_path, free_port
) -> None:
    config = slurm_config(tmp_path, free_port, sim_args="--latency 30")
    invocation_id = _run(cli, config)
    wait_for(invocation_id, lambda rows: rows[0]["state"] == "RUNNING", timeout_s=60)
    assert server_processes(free_port)

    result = cli("kill", invocation_id)
    assert result.code == 0, result.err
    assert not active_jobs(invocation_id)
    assert not wait_gone(free_port), "a model server process is left on the node"
    rows = api.status([invocation_id])
    assert states(rows) == ["KILLED", "KILLED"], rows
    second = cli("kill", invocation_id)
    assert (second.code, second.out.strip()) == (0, "nothing was running")


def test_kill_after_the_next_job_was_queued_cancels_the_whole_chain(
    cli, tmp_path, free_port
) -> None:
    # A 1-minute limit is within the 60 s warning: the job queues its successor at once.
    config = slurm_config(
        tmp_path, free_port, walltime="00:01:00", max_walltime="00:05:00", sim_args="--latency 30"
    )
    invocation_id = _run(cli, config)
    script = f"evalfleet-{invocation_id}.sbatch"
    wait_for(invocation_id, lambda rows: len(chain_jobs(invocation_id)[script]) == 2, 60)
    assert len(active_jobs(invocation_id)) == 2

    result = cli("kill", invocation_id)
    assert result.code == 0, result.err
    assert len(result.out.split("Slurm job ")) == 3  # both jobs of the chain
    assert not active_jobs(invocation_id)
    assert not wait_gone(free_port)
    assert states(api.status([invocation_id])) == ["KILLED", "KILLED"]


def test_a_job_that_hits_its_time_limit_is_continued_and_finishes(cli, tmp_path, free_port) -> None:
    """11 answers of 10 s each outlast the first job's 1-minute limit (Slurm kills it at
    60-95 s); the next job answers the rest from where the response cache left off."""
    config = slurm_config(
        tmp_path, free_port, tasks=["slow"], samples=11, walltime="00:01:00",
        max_walltime="00:03:00", sim_args="--latency 10", params="{parallelism: 1}",
    )  # fmt: skip
    invocation_id = _run(cli, config)
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=300, poll_s=3)
    assert states(rows) == ["SUCCESS"], rows
    assert rows[0]["detail"] == "accuracy 1.0000 (95% CI 1.000\u20131.000, n=11)"
    assert not wait_no_jobs(invocation_id)  # the next job's own successor is cancelled
    first, second, *_ = chain_jobs(invocation_id)[f"evalfleet-{invocation_id}.sbatch"]
    root = tmp_path / "results" / invocation_id
    assert "TIMEOUT" in _scontrol_state(first)
    assert "COMPLETED" in _scontrol_state(second)
    assert "queued job" in (root / f"slurm-{first}.out").read_text()
    eval_log = (root / "slow" / "logs" / "eval.log").read_text()
    cached = [int(n) for n in re.findall(r"INFO (\d+) answers came from the cache", eval_log)]
    # Two runs of the task; the one that finished took its first answers from the cache.
    assert eval_log.count("11 samples x 1 repeats") == 2, eval_log
    assert len(cached) == 1 and 0 < cached[0] < 11, eval_log


def test_a_preempted_job_is_continued_and_finishes(cli, tmp_path, free_port) -> None:
    """Preempted under PreemptMode=CANCEL (no warning, so the job queues no successor):
    the next `status` continues the chain."""
    config = slurm_config(
        tmp_path, free_port, tasks=["slow"], samples=6, sim_args="--latency 2",
        params="{parallelism: 1}",
        execution="  partition: preemptible\n  sbatch_extra_flags: {exclusive: true}",
    )  # fmt: skip
    invocation_id = _run(cli, config)
    wait_for(invocation_id, all_in("RUNNING"), timeout_s=60)
    time.sleep(5)  # a few answers reach the cache
    urgent = subprocess.run(
        ["sbatch", "--parsable", "-p", "urgent", "--exclusive", "--wrap", "sleep 2"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip

    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=120)
    assert states(rows) == ["SUCCESS"], rows
    assert not wait_no_jobs(invocation_id)
    first, second = chain_jobs(invocation_id)[f"evalfleet-{invocation_id}.sbatch"]
    assert "JobState=PREEMPTED" in _scontrol_state(first)
    assert "JobState=COMPLETED" in _scontrol_state(second)
    assert "JobState=COMPLETED" in _scontrol_state(urgent)
    root = tmp_path / "results" / invocation_id
    assert "(link 2)" in (root / f"slurm-{second}.out").read_text()
    assert not server_processes(free_port)


def _scontrol_state(job_id: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout


def test_a_harness_task_runs_in_the_batch_job(cli, tmp_path, free_port) -> None:
    """A task run by its framework package, on the cluster: the package's environment (built
    once, in the shared cache), the harness behind evalfleet's proxy inside the batch job."""
    from evalfleet.harness.environment import ensure_environment

    ensure_environment("nvidia-mmath", "26.3")
    (tmp_path / "data").mkdir()
    config = slurm_config(
        tmp_path, free_port, tasks=[], sim_args="--default-answer '\\boxed{{204}}'"
    )
    config.write_text(
        config.read_text()
        + "    - {name: mmath.mmath_en, params: {limit_samples: 3, parallelism: 2}}\n"
    )
    invocation_id = _run(cli, config)
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=300)
    assert states(rows) == ["SUCCESS"], rows
    results = json.loads(
        (tmp_path / "results" / invocation_id / "mmath.mmath_en" / "results.json").read_text()
    )
    assert results["harness"]["package"] == "nvidia-mmath"
    assert results["metrics"][results["headline_metric"]]["value"] == pytest.approx(1 / 3)
    assert rows[0]["detail"].startswith(results["headline_metric"])
    assert not wait_no_jobs(invocation_id)
    assert not server_processes(free_port)


def _judge_port(taken: int) -> int:
    from tests.slurm_cluster import free_port

    while (port := free_port()) == taken:
        pass
    return port


def _with_judge(config: Path, port: int, sim_args: str = "") -> Path:
    """The config with a second simulator as `judge_deployment` (model gpt-4, every
    answer a `[[6]]` verdict), on `port`, in the same batch job."""
    config.write_text(
        config.read_text()
        + f"""\
judge_deployment:
  type: generic
  command: "{PY} -m evalfleet.testing.endpoint --port {{port}} --model gpt-4 --default-answer '[[6]]' {sim_args}"
  served_model_name: gpt-4
  port: {port}
"""
    )
    return config


def test_a_judged_harness_task_gets_the_judge_deployed_in_its_job(cli, tmp_path, free_port) -> None:
    """mtbench (nvidia-mtbench-evaluator) in the batch job, its judge a second server that
    the same job starts beside the model; both go down with the job."""
    from evalfleet.harness.environment import ensure_environment

    ensure_environment("nvidia-mtbench-evaluator", "26.3")
    (tmp_path / "data").mkdir()
    judge_port = _judge_port(free_port)
    config = slurm_config(tmp_path, free_port, tasks=[])
    config.write_text(config.read_text() + "    - {name: mtbench, params: {limit_samples: 2}}\n")
    invocation_id = _run(cli, _with_judge(config, judge_port))
    rows = wait_for(invocation_id, all_in("SUCCESS", "FAILED"), timeout_s=300)
    assert states(rows) == ["SUCCESS"], rows
    root = tmp_path / "results" / invocation_id
    results = json.loads((root / "mtbench" / "results.json").read_text())
    assert 6.0 in {metric["value"] for metric in results["metrics"].values()}, results["metrics"]
    assert results["counts"]["judge_requests"] > 0  # the judge answered, through the proxy
    job = json.loads((root / "mtbench" / "job.json").read_text())
    judge = job["harness"]["run_config"]["config"]["params"]["extra"]["judge"]
    assert judge == {"url": f"http://127.0.0.1:{judge_port}/v1", "model_id": "gpt-4"}
    assert (
        f"READY http://127.0.0.1:{judge_port}" in (root / "logs" / "judge_server.log").read_text()
    )

    logs = cli("logs", invocation_id).out
    assert "evalfleet: the judge server is ready after" in logs
    assert f"[judge server] READY http://127.0.0.1:{judge_port}" in logs
    assert not wait_no_jobs(invocation_id)
    assert not wait_gone(free_port), "the model server outlived its job"
    assert not wait_gone(judge_port), "the judge server outlived its job"


def test_kill_while_running_stops_the_judge_server_too(cli, tmp_path, free_port) -> None:
    judge_port = _judge_port(free_port)
    config = _with_judge(slurm_config(tmp_path, free_port, sim_args="--latency 30"), judge_port)
    invocation_id = _run(cli, config)
    wait_for(invocation_id, lambda rows: rows[0]["state"] == "RUNNING", timeout_s=60)
    assert server_processes(free_port) and server_processes(judge_port)

    result = cli("kill", invocation_id)
    assert result.code == 0, result.err
    assert not active_jobs(invocation_id)
    assert not wait_gone(free_port), "a model server process is left on the node"
    assert not wait_gone(judge_port), "a judge server process is left on the node"
    assert states(api.status([invocation_id])) == ["KILLED", "KILLED"]
