"""The Lepton executor end to end against the emulator: real processes, real HTTP.

Each run uses the examples as shipped, with only what cannot run here overridden: a task
that runs offline
(HumanEval, 2 samples) and the output dir. Jobs run `evalfleet eval` as local processes of
the emulator, each in a fresh environment over the emulator's job image (evalfleet's
dependencies, not evalfleet), so each installs the wheel its spec ships; each deployment's
endpoint proxies to an endpoint simulator.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalfleet.executors.lepton.config import LeptonEvaluationTasks
from evalfleet.executors.wheel import own_wheel
from evalfleet.store import InvocationStore
from evalfleet.testing import run_simulator
from evalfleet.testing.lepton import Emulator, run_emulator
from tests.conftest import EXAMPLES, REPO

ENDPOINT_TOKEN = "PLANTED-endpoint-token-7f3a9c"
WORKSPACE_TOKEN = "PLANTED-workspace-token-51e2"
SECRETS = {
    "ENDPOINT_API_KEY": ENDPOINT_TOKEN,
    "HUGGING_FACE_HUB_TOKEN": "PLANTED-hf-token-0c1d",
    "NGC_API_KEY": "PLANTED-ngc-key-9b8a",
}
FAST = [
    "-o", "evaluation.tasks=[{name: humaneval}]",
    "-o", "evaluation.params.limit_samples=2",
]  # fmt: skip


def _slow_install(seconds: int) -> list[str]:
    """Overrides that make each job sleep before it installs evalfleet as usual."""
    default = LeptonEvaluationTasks().install_command
    return ["-o", f'execution.evaluation_tasks.install_command="sleep {seconds}; {default}"']


@pytest.fixture
def fixed_wheel() -> None:
    """The jobs install the real wheel of this evalfleet (not the plan tests' stand-in)."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with run_emulator(WORKSPACE_TOKEN, secrets=SECRETS) as emulator:
        yield emulator


@pytest.fixture
def lepton(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Emulator:
    """The shared emulator with default faults, and the client env pointing at it."""
    emulator.faults(server_errors=0, deployment_state=None, ready_after=0.5, delete_after=0.3,
                    queue_after=0.2, archive_after=None, new_deployment_api=False,
                    token_revoked=False)  # fmt: skip
    for name, value in emulator.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEPTON_CACHE_DIR", str(tmp_path / "lepton-cache"))  # no real login
    monkeypatch.delenv("ENDPOINT_API_KEY", raising=False)
    return emulator


def _run_args(example: str, out: Path, *extra: str) -> list[str]:
    return ["run", "--config-dir", str(EXAMPLES), "--config-name", example, *FAST,
            "-o", f"execution.output_dir={out}", *extra]  # fmt: skip


def _record(invocation_id: str):
    with InvocationStore() as store:
        return store.get(invocation_id)


def _assert_nothing_left(emulator: Emulator) -> None:
    assert emulator.wait_until_empty() == {"deployments": [], "jobs": []}


def _assert_token_nowhere(*roots: Path, texts: tuple[str, ...] = ()) -> None:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for token in (ENDPOINT_TOKEN, WORKSPACE_TOKEN):
                    assert token.encode() not in data, f"{token} found in {path}"
    for text in texts:
        assert ENDPOINT_TOKEN not in text and WORKSPACE_TOKEN not in text


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _results(out: Path, invocation_id: str, task: str = "humaneval") -> dict:
    task_dir = out / invocation_id / task
    samples = (task_dir / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2
    assert not (task_dir / "cache.sqlite").exists()  # the cache stays in the job
    return json.loads((task_dir / "results.json").read_text())


def test_vllm_example_runs_to_success(cli, lepton, tmp_path, isolated, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("ENDPOINT_API_KEY", ENDPOINT_TOKEN)  # lets the launcher probe /health
    result = cli(*_run_args("lepton_vllm_llama_3_1_8b_instruct", out))
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    assert "Ready after" in result.err and "healthy" in result.err
    assert "SUCCESS" in result.out and "score" in result.out
    results = _results(out, invocation_id)
    assert results["task"] == "simple_evals.humaneval" and results["metrics"]["pass@1"]["n"] == 2
    record = _record(invocation_id)
    assert record.handle["endpoint"] == f"llama-3-1-8b-{invocation_id}"
    assert record.handle["endpoint_deleted"] is True
    assert record.jobs[0].handle["lepton_id"].startswith(f"eval-{invocation_id}-humaneval-")
    _assert_nothing_left(lepton)

    logs = cli("logs", invocation_id)
    assert logs.code == 0
    assert "[humaneval] (results:" in logs.out and "EVALFLEET-RESULTS " not in logs.out
    # The job ran the wheel its spec shipped, installed in its own environment.
    (ran,) = re.findall(r"evalfleet: running evalfleet (\S+) from (\S+)", logs.out)
    assert ran[0] == own_wheel().version and "+sha" in ran[0]
    installed = Path(ran[1])
    assert "/.container/" in ran[1] and not installed.is_relative_to(REPO)
    assert "[endpoint] POST /v1/chat/completions 200" in logs.out
    dry = cli(*_run_args("lepton_vllm_llama_3_1_8b_instruct", out), "--dry-run", "--json")
    assert dry.code == 0
    _assert_token_nowhere(isolated, out, texts=(result.out, result.err, logs.out, dry.out))


AUTO_EXPORT = ("-o", "execution.auto_export.destinations=[local]")


def _exported(exports: Path) -> list[tuple[str, str]]:
    summary = json.loads((exports / "summary.json").read_text())
    return [(row["invocation_id"], row["task"]) for row in summary["rows"]]


def test_nim_example_runs_to_success(cli, lepton, tmp_path, isolated):
    out, exports = tmp_path / "out", tmp_path / "exports"
    result = cli(*_run_args("lepton_nim_llama_3_1_8b_instruct", out, *AUTO_EXPORT,
                            "-o", f"export.local.output_dir={exports}"))  # fmt: skip
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    # Without the token in the launcher's env, the probe accepts the endpoint's 401.
    assert "up (401 without the token" in result.err
    assert _results(out, invocation_id)["metrics"]["pass@1"]["n"] == 2
    assert _exported(exports) == [(invocation_id, "humaneval")]  # auto-export at the end
    _assert_nothing_left(lepton)
    _assert_token_nowhere(isolated, out, texts=(result.out, result.err))


def test_none_example_runs_to_success(cli, lepton, tmp_path, isolated):
    out = tmp_path / "out"
    with run_simulator(model="llama-3.1-8b-instruct", require_api_key=ENDPOINT_TOKEN) as sim:
        result = cli(*_run_args("lepton_none_llama_3_1_8b_instruct", out,
                                "-o", f"target.api_endpoint.url={sim.base_url}/v1/chat/completions"))  # fmt: skip
        assert sim.stats()["by_status"].get("200", 0) >= 2  # the job used the secret's key
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    assert _record(invocation_id).handle["endpoint"] is None
    assert _results(out, invocation_id)["metrics"]["pass@1"]["n"] == 2
    _assert_nothing_left(lepton)
    _assert_token_nowhere(isolated, out, texts=(result.out, result.err))


def test_keep_endpoint_then_kill_deletes_it(cli, lepton, tmp_path):
    out = tmp_path / "out"
    result = cli(*_run_args("lepton_nim_llama_3_1_8b_instruct", out), "--keep-endpoint")
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    assert lepton.live()["deployments"] == [f"nim-{invocation_id}"]
    status = cli("status", invocation_id)  # a kept endpoint is not cleaned up by status
    assert "SUCCESS" in status.out and lepton.live()["deployments"]
    killed = cli("kill", invocation_id)
    assert killed.code == 0 and f"Lepton endpoint nim-{invocation_id}" in killed.out
    _assert_nothing_left(lepton)
    again = cli("kill", invocation_id)
    assert again.code == 0 and again.out.strip() == "nothing was running"


# --------------------------------------------------------------------------- background runs


def test_detach_returns_at_once_and_the_background_run_tears_down(cli, lepton, tmp_path):
    out = tmp_path / "out"
    result = cli(*_run_args("lepton_nim_llama_3_1_8b_instruct", out), "--detach")
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    assert not (out / invocation_id / "humaneval" / "results.json").exists()  # not done yet

    def succeeded() -> bool:
        rows = json.loads(cli("status", invocation_id, "--json").out)
        return all(row["state"] == "SUCCESS" for row in rows)

    try:
        # SUCCESS only once the results are home (export may follow at once) ...
        _wait_for(succeeded, timeout=90, what="the detached run to succeed")
        assert _results(out, invocation_id)["metrics"]["pass@1"]["n"] == 2
        # ... then the background run deletes the endpoint and ends.
        _wait_for(lambda: _record(invocation_id).handle.get("endpoint_deleted"), timeout=30,
                  what="the detached run to finish")  # fmt: skip
    finally:
        runner = _record(invocation_id).handle.get("runner_pid")
        if runner and _wait_for_exit(runner, timeout=10) is False:
            os.kill(runner, signal.SIGKILL)  # never leave it polling a stopped emulator
    _assert_nothing_left(lepton)
    assert "deleted" in (out / invocation_id / "logs" / "run.log").read_text()


def _start_run(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "evalfleet", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether process `pid` is gone within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _running_invocation() -> str | None:
    with InvocationStore() as store:
        for record in store.list_invocations():
            if record.jobs and all(j.handle.get("lepton_id") for j in record.jobs):
                return record.invocation_id
    return None


def test_kill_mid_run_leaves_nothing(cli, lepton, tmp_path):
    out = tmp_path / "out"
    run = _start_run(_run_args("lepton_vllm_llama_3_1_8b_instruct", out,
                               "-o", "execution.evaluation_tasks.install_command=sleep 60"))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        _wait_for(lambda: lepton.live()["jobs"], what="a live job")
        killed = cli("kill", invocation_id)
        assert killed.code == 0, killed.err
        assert f"run process {run.pid}" in killed.out
        assert run.wait(30) != 0
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
    _assert_nothing_left(lepton)
    assert {job.state for job in _record(invocation_id).jobs} == {"KILLED"}
    assert cli("kill", invocation_id).out.strip() == "nothing was running"  # twice


def test_a_dead_runner_is_cleaned_up_by_status(cli, lepton, tmp_path):
    out = tmp_path / "out"
    exports = tmp_path / "exports"
    run = _start_run(_run_args("lepton_vllm_llama_3_1_8b_instruct", out,
                               *_slow_install(2),
                               *AUTO_EXPORT, "-o", f"export.local.output_dir={exports}"))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        run.send_signal(signal.SIGKILL)  # no clean-up: the endpoint stays
        run.communicate()
        job_id = _record(invocation_id).jobs[0].handle["lepton_id"]
        _wait_for(lambda: job_id not in lepton.live()["jobs"], what="the job to finish")
        assert lepton.live()["deployments"] == [f"llama-3-1-8b-{invocation_id}"]
        status = cli("status", invocation_id)
        assert status.code == 0 and "SUCCESS" in status.out and "score" in status.out
        assert _results(out, invocation_id)["metrics"]["pass@1"]["n"] == 2
        _assert_nothing_left(lepton)
        assert _record(invocation_id).handle["endpoint_deleted"] is True
        # The run died before its end: the status that saw the end exported it, once.
        assert _exported(exports) == [(invocation_id, "humaneval")]
        (exports / "summary.json").unlink()
        assert cli("status", invocation_id).code == 0
        assert not (exports / "summary.json").exists()
    finally:
        if run.poll() is None:
            run.kill()


def test_kill_after_the_jobs_were_archived(cli, lepton, tmp_path):
    lepton.faults(archive_after=0.2)
    out = tmp_path / "out"
    result = cli(*_run_args("lepton_nim_llama_3_1_8b_instruct", out), "--keep-endpoint")
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    lepton_id = _record(invocation_id).jobs[0].handle["lepton_id"]
    time.sleep(0.5)
    alive = lepton.call("GET", "/jobs", api=True)["jobs"]
    assert lepton_id not in [job["metadata"]["id"] for job in alive]  # archived
    archived = lepton.call("GET", f"/jobs/{lepton_id}?job_query_mode=alive_and_archive")
    assert archived["status"]["state"] == "Completed"  # keeps its final state
    killed = cli("kill", invocation_id)
    assert killed.code == 0 and killed.out.strip() == f"stopped Lepton endpoint nim-{invocation_id}"
    _assert_nothing_left(lepton)
    assert cli("status", invocation_id).out.count("SUCCESS") == 1
    assert cli("kill", invocation_id).out.strip() == "nothing was running"


# --------------------------------------------------------------------------- failures


def test_deployment_error_stops_the_launch_and_deletes_it(cli, lepton, tmp_path):
    lepton.faults(deployment_state="Error")
    out = tmp_path / "out"
    result = cli(*_run_args("lepton_vllm_llama_3_1_8b_instruct", out))
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert any(line.startswith("error: Lepton endpoint llama-3-1-8b-") and "went to Error" in line
               for line in lines)  # fmt: skip
    assert "CUDA out of memory" in result.err and "event: Warning BackOff" in result.err
    _assert_nothing_left(lepton)
    with InvocationStore() as store:
        (record,) = store.list_invocations()
    assert [job.state for job in record.jobs] == ["FAILED"]
    assert record.jobs[0].detail.startswith("not run: Lepton endpoint")


def test_readiness_timeout_stops_the_launch(cli, lepton, tmp_path):
    lepton.faults(deployment_state="Starting")
    result = cli(*_run_args("lepton_nim_llama_3_1_8b_instruct", tmp_path / "out",
                            "-o", "execution.lepton_platform.deployment.endpoint_readiness_timeout=1"))  # fmt: skip
    assert result.code == 1
    assert "was not Ready after 1 s (still Starting)" in result.err
    assert "endpoint_readiness_timeout" in result.err
    _assert_nothing_left(lepton)


def test_5xx_bursts_are_retried(cli, lepton, tmp_path):
    lepton.faults(server_errors=3)
    result = cli(*_run_args("lepton_nim_llama_3_1_8b_instruct", tmp_path / "out"))
    assert result.code == 0, result.err
    assert lepton.faults()["server_errors"] == 0
    _assert_nothing_left(lepton)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("deployment.lepton_config.resource_shape=gpu.9xzz",
         "error: Lepton refused POST /deployments (400): resource_requirement.resource_shape: "
         "resource shape 'gpu.9xzz' is not available in this workspace"),
        ("deployment.lepton_config.node_group=ng-missing",
         "error: Lepton refused POST /deployments (400): dedicated node group 'ng-missing' "
         "not found in this workspace"),
        ("execution.evaluation_tasks.resource_shape=cpu.huge",
         "error: Lepton refused POST /jobs (400): resource_shape: resource shape 'cpu.huge'"),
    ],
)  # fmt: skip
def test_api_refusals_are_one_line(cli, lepton, tmp_path, override, expected):
    result = cli(*_run_args("lepton_nim_llama_3_1_8b_instruct", tmp_path / "out", "-o", override))
    assert result.code == 1
    errors = _errors(result.err)
    assert len(errors) == 1 and errors[0].startswith(expected), result.err
    assert "(check " in errors[0]
    _assert_nothing_left(lepton)


def test_missing_credentials_and_wrong_token(cli, lepton, tmp_path, monkeypatch, isolated):
    args = _run_args("lepton_nim_llama_3_1_8b_instruct", tmp_path / "out")
    monkeypatch.delenv("LEPTON_WORKSPACE_ID")
    monkeypatch.delenv("LEPTON_WORKSPACE_TOKEN")
    missing = cli(*args)
    assert missing.code == 2
    assert _errors(missing.err) == [
        "error: no Lepton credentials found: run `lep login -c <workspace_id>:<token>` or set "
        "LEPTON_WORKSPACE_ID and LEPTON_WORKSPACE_TOKEN"
    ]
    monkeypatch.setenv("LEPTON_WORKSPACE_ID", lepton.workspace_id)
    monkeypatch.setenv("LEPTON_WORKSPACE_TOKEN", "wrong-token")
    wrong = cli(*args)
    assert wrong.code == 1
    (line,) = _errors(wrong.err)
    assert line.startswith(
        f"error: Lepton refused the token for workspace {lepton.workspace_id} (401"
    )
    assert "lep login" in line
    assert not isolated.exists() or not InvocationStore().list_invocations()  # nothing recorded


def test_status_is_unknown_when_lepton_cannot_be_reached(cli, lepton, tmp_path, monkeypatch):
    run = _start_run(_run_args("lepton_nim_llama_3_1_8b_instruct", tmp_path / "out",
                               "-o", "execution.evaluation_tasks.install_command=sleep 60"))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        monkeypatch.setenv("LEPTON_WORKSPACE_URL", "http://127.0.0.1:9/api/v2/workspaces/x")
        status = cli("status", invocation_id, "--json")
        (row,) = json.loads(status.out)
        assert row["state"] == "UNKNOWN" and "cannot reach Lepton" in row["detail"]
        monkeypatch.setenv("LEPTON_WORKSPACE_URL", lepton.base_url)
        (row,) = json.loads(cli("status", invocation_id, "--json").out)
        assert row["state"] in ("PENDING", "RUNNING") and "endpoint nim-" in row["detail"]
    finally:
        assert cli("kill", invocation_id).code == 0
        run.communicate()
    _assert_nothing_left(lepton)


def test_resume_reruns_a_killed_task(cli, lepton, tmp_path):
    out = tmp_path / "out"
    run = _start_run(_run_args("lepton_nim_llama_3_1_8b_instruct", out,
                               "-o", "execution.evaluation_tasks.install_command=sleep 60"))  # fmt: skip
    invocation_id = _wait_for(_running_invocation, what="jobs submitted")
    assert cli("kill", invocation_id).code == 0
    run.communicate()
    _assert_nothing_left(lepton)
    # The stored config still sleeps 60 s before evaluating: resume runs exactly that again,
    # so here it is only checked that resume brings the endpoint and a new job back.
    resumed = _start_run(["resume", invocation_id])
    try:
        _wait_for(lambda: len(lepton.live()["jobs"]) == 1, what="the resumed job")
        assert lepton.live()["deployments"] == [f"nim-{invocation_id}"]
        record = _record(invocation_id)
        assert record.jobs[0].state in ("PENDING", "RUNNING")
    finally:
        assert cli("kill", invocation_id).code == 0
        resumed.communicate()
    _assert_nothing_left(lepton)


def test_logs_follow_ends_with_the_jobs(cli, lepton, tmp_path):
    out = tmp_path / "out"
    run = _start_run(_run_args("lepton_nim_llama_3_1_8b_instruct", out,
                               *_slow_install(2)))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        followed = cli("logs", "--follow", invocation_id)
        assert followed.code == 0, followed.err
        lines = followed.out.splitlines()
        assert lines[0].startswith("[endpoint] Creating replica of nim-")
        assert any(line.startswith("[humaneval] (results: ") for line in lines)
        assert lines[-1] == "[humaneval] container exited with code 0"
        one = cli("logs", f"{invocation_id}.0")
        assert one.out.splitlines()[-1] == "[humaneval] container exited with code 0"
        assert not any(line.startswith("[endpoint]") for line in one.out.splitlines())
        assert run.wait(60) == 0
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
    _assert_nothing_left(lepton)


def test_status_asks_lepton_once_per_invocation(cli, lepton, tmp_path):
    # The example as shipped has two tasks (ifeval, gsm8k); they never get past the install.
    run = _start_run(["run", "--config-dir", str(EXAMPLES), "--config-name",
                      "lepton_vllm_llama_3_1_8b_instruct",
                      "-o", f"execution.output_dir={tmp_path / 'out'}",
                      "-o", "execution.evaluation_tasks.install_command=sleep 60"])  # fmt: skip
    invocation_id = _wait_for(_running_invocation, what="jobs submitted")
    try:
        lepton.requests(reset=True)
        rows = json.loads(cli("status", invocation_id, "--json").out)
        assert [row["task"] for row in rows] == ["ifeval", "gsm8k"]
        assert {row["state"] for row in rows} <= {"PENDING", "RUNNING"}
        assert lepton.requests() == {"GET /jobs": 1, "GET /deployments/{name}": 1}
    finally:
        assert cli("kill", invocation_id).code == 0
        run.communicate()
    _assert_nothing_left(lepton)


def test_a_stray_duplicate_job_is_deleted_at_the_end(cli, lepton, tmp_path):
    """A `POST /jobs` retried after a 5xx the server had processed leaves a job evalfleet
    never recorded; the run deletes it when the recorded ones end."""
    run = _start_run(_run_args("lepton_nim_llama_3_1_8b_instruct", tmp_path / "out",
                               *_slow_install(1)))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        lepton.call("POST", "/jobs", {
            "metadata": {"name": f"eval-{invocation_id}-humaneval"},
            "spec": {"resource_shape": "cpu.small",
                     "container": {"image": "x", "command": ["sleep", "60"]}}})  # fmt: skip
        assert run.wait(60) == 0
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
    # The stray sleeps 60 s: it is gone only because the run deleted it.
    _assert_nothing_left(lepton)


def test_a_harness_task_runs_on_lepton_and_its_results_come_home(cli, lepton, tmp_path, isolated):
    from evalfleet.datasets.cache import cache_dir
    from evalfleet.harness.environment import ensure_environment

    ensure_environment("nvidia-mmath", "26.3")  # the shared cache a real job would mount
    out = tmp_path / "out"
    result = cli(
        *_run_args(
            "lepton_vllm_llama_3_1_8b_instruct", out,
            "-o", "evaluation.tasks=[{name: mmath.mmath_en}]",
            "-o", f"execution.env_vars.EVALFLEET_CACHE_DIR={cache_dir()}",
        )
    )  # fmt: skip
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    task_dir = out / invocation_id / "mmath.mmath_en"
    results = json.loads((task_dir / "results.json").read_text())
    assert results["task"] == "mmath.mmath_en"
    assert results["harness"]["package"] == "nvidia-mmath"
    assert results["counts"]["responses"] == 2 and results["counts"]["errors"] == 0
    assert results["metrics"][results["headline_metric"]]["value"] == 0.0  # echoed prompts
    assert len((task_dir / "samples.jsonl").read_text().splitlines()) == 2
    # The harness reached the endpoint with the token only through the proxy's env var.
    assert "$" in (task_dir / "logs" / "harness_command.sh").read_text()
    _assert_nothing_left(lepton)
    _assert_token_nowhere(isolated, out, texts=(result.out, result.err))


# --------------------------------------------------------------------------- judge deployment

JUDGE_TOKEN = "PLANTED-judge-token-3d6e"


def _judge(*extra: str) -> list[str]:
    """A judge deployed beside the model; its emulated server answers every request '[[6]]'
    (the emulator's EMULATOR_DEFAULT_ANSWER) and serves the name mtbench asks for."""
    settings = [
        "type=vllm", "checkpoint_path=meta-llama/Llama-3.3-70B-Instruct",
        "served_model_name=gpt-4", "port=8001",
        "lepton_config.endpoint_name=judge", "lepton_config.resource_shape=gpu.1xh200",
        'lepton_config.envs.EMULATOR_DEFAULT_ANSWER="[[6]]"', *extra,
    ]  # fmt: skip
    return [arg for setting in settings for arg in ("-o", f"+judge_deployment.{setting}")]


def test_a_judge_deployment_scores_mtbench_and_goes_down_with_the_model(
    cli, lepton, tmp_path, isolated
):
    from evalfleet.datasets.cache import cache_dir
    from evalfleet.harness.environment import ensure_environment

    ensure_environment("nvidia-mtbench-evaluator", "26.3")  # the shared cache a job would mount
    lepton.add_secret("JUDGE_API_KEY", JUDGE_TOKEN)  # the judge's own token
    out = tmp_path / "out"
    args = _run_args(
        "lepton_vllm_llama_3_1_8b_instruct", out,
        "-o", "evaluation.tasks=[{name: mtbench}]",
        "-o", f"execution.env_vars.EVALFLEET_CACHE_DIR={cache_dir()}",
        *_judge("lepton_config.api_tokens=[{value_from: {token_name_ref: JUDGE_API_KEY}}]"),
    )  # fmt: skip
    result = cli(*args)
    assert result.code == 0, result.err
    invocation_id = result.out.strip().splitlines()[-1]
    assert f"Lepton judge endpoint judge-{invocation_id} Ready after" in result.err
    assert f"Lepton judge endpoint judge-{invocation_id} deleted" in result.err
    task_dir = out / invocation_id / "mtbench"
    results = json.loads((task_dir / "results.json").read_text())
    assert results["counts"]["judge_requests"] > 0  # through the job's proxy to the judge
    assert 6.0 in {metric["value"] for metric in results["metrics"].values()}  # its '[[6]]'
    job = json.loads((task_dir / "job.json").read_text())
    judge = job["harness"]["run_config"]["config"]["params"]["extra"]["judge"]
    assert judge["url"] == "${EVALFLEET_JUDGE_URL}/v1" and judge["model_id"] == "gpt-4"
    record = _record(invocation_id)
    assert record.handle["judge_endpoint"] == f"judge-{invocation_id}"
    assert record.handle["endpoint_deleted"] is True
    assert record.handle["judge_endpoint_deleted"] is True
    _assert_nothing_left(lepton)

    logs = cli("logs", invocation_id)
    assert logs.code == 0
    assert "[judge endpoint] POST /v1/chat/completions 200" in logs.out
    assert "[endpoint] POST /v1/chat/completions 200" in logs.out
    dry = cli(*args, "--dry-run")
    assert dry.code == 0 and "POST /deployments  (the judge)" in dry.out
    texts = (result.out, result.err, logs.out, dry.out)
    _assert_token_nowhere(isolated, out, texts=texts)
    for root in (isolated, out):
        assert not any(
            JUDGE_TOKEN.encode() in p.read_bytes() for p in root.rglob("*") if p.is_file()
        )
    assert not any(JUDGE_TOKEN in text for text in texts)


def test_kill_mid_run_deletes_the_judge_too(cli, lepton, tmp_path):
    run = _start_run(_run_args("lepton_vllm_llama_3_1_8b_instruct", tmp_path / "out",
                               "-o", "execution.evaluation_tasks.install_command=sleep 60",
                               *_judge()))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        assert sorted(lepton.live()["deployments"]) == [
            f"judge-{invocation_id}",
            f"llama-3-1-8b-{invocation_id}",
        ]
        killed = cli("kill", invocation_id)
        assert killed.code == 0, killed.err
        assert run.wait(30) != 0
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
    _assert_nothing_left(lepton)
    record = _record(invocation_id)
    assert record.handle["judge_endpoint_deleted"] is True
    assert {job.state for job in record.jobs} == {"KILLED"}


def test_kill_after_the_runner_died_deletes_both_endpoints(cli, lepton, tmp_path):
    run = _start_run(_run_args("lepton_vllm_llama_3_1_8b_instruct", tmp_path / "out",
                               "-o", "execution.evaluation_tasks.install_command=sleep 60",
                               *_judge()))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        run.send_signal(signal.SIGKILL)  # no clean-up: kill alone must find both
        run.communicate()
        assert len(lepton.live()["deployments"]) == 2
        killed = cli("kill", invocation_id)
        assert killed.code == 0, killed.err
        assert f"Lepton endpoint llama-3-1-8b-{invocation_id}" in killed.out
        assert f"Lepton judge endpoint judge-{invocation_id}" in killed.out
    finally:
        if run.poll() is None:
            run.kill()
    _assert_nothing_left(lepton)
    assert cli("kill", invocation_id).out.strip() == "nothing was running"


def test_status_deletes_both_endpoints_of_an_ended_run_whose_runner_died(cli, lepton, tmp_path):
    out = tmp_path / "out"
    run = _start_run(_run_args("lepton_vllm_llama_3_1_8b_instruct", out,
                               *_slow_install(2),
                               *_judge()))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        run.send_signal(signal.SIGKILL)
        run.communicate()
        job_id = _record(invocation_id).jobs[0].handle["lepton_id"]
        _wait_for(lambda: job_id not in lepton.live()["jobs"], what="the job to finish")
        assert len(lepton.live()["deployments"]) == 2
        status = cli("status", invocation_id)
        assert status.code == 0 and "SUCCESS" in status.out
        _assert_nothing_left(lepton)
        record = _record(invocation_id)
        assert record.handle["endpoint_deleted"] and record.handle["judge_endpoint_deleted"]
    finally:
        if run.poll() is None:
            run.kill()


@pytest.mark.parametrize(
    ("state", "expected"),
    [("Starting", "was not Ready after 2 s (still Starting)"), ("Error", "went to Error")],
)
def test_a_judge_that_never_gets_ready_fails_the_launch_and_deletes_both(
    cli, lepton, tmp_path, state, expected
):
    result = cli(*_run_args(
        "lepton_vllm_llama_3_1_8b_instruct", tmp_path / "out",
        "-o", "execution.lepton_platform.deployment.endpoint_readiness_timeout=2",
        *_judge(f"lepton_config.envs.EMULATOR_DEPLOYMENT_STATE={state}"),
    ))  # fmt: skip
    assert result.code == 1
    error = _errors(result.err)[0]  # then the judge's log and events
    assert error.startswith("error: Lepton judge endpoint judge-") and expected in error
    assert "Lepton endpoint llama-3-1-8b-" in result.err and "Ready after" in result.err
    _assert_nothing_left(lepton)
    with InvocationStore() as store:
        (record,) = store.list_invocations()
    assert record.handle["endpoint_deleted"] and record.handle["judge_endpoint_deleted"]
    assert [job.state for job in record.jobs] == ["FAILED"]
    assert record.jobs[0].detail.startswith("not run: Lepton judge endpoint")


def test_a_host_value_reaches_the_job_and_nothing_else(
    cli, lepton, tmp_path, isolated, monkeypatch
):
    """`host:NAME` (the launcher's meaning): read on this machine, sent in the job's spec
    only; unset, the launch stops before anything is created or recorded."""
    out = tmp_path / "out"
    host_key = "hostkey-0123456789"
    with run_simulator(model="llama-3.1-8b-instruct", require_api_key=host_key) as sim:
        args = _run_args(
            "lepton_none_llama_3_1_8b_instruct", out,
            "-o", f"target.api_endpoint.url={sim.base_url}/v1/chat/completions",
            "-o", "~execution.lepton_platform.tasks.env_vars.API_KEY",
            "-o", "+evaluation.env_vars.API_KEY=host:EVALFLEET_TEST_HOST_KEY",
        )  # fmt: skip
        monkeypatch.delenv("EVALFLEET_TEST_HOST_KEY", raising=False)
        missing = cli(*args)
        assert missing.code == 2
        assert _errors(missing.err) == [
            "error: env API_KEY: host:EVALFLEET_TEST_HOST_KEY is not set in this environment "
            "(export EVALFLEET_TEST_HOST_KEY=..., or write lit:<value> for a literal value)"
        ]
        assert not isolated.exists() or not InvocationStore().list_invocations()
        monkeypatch.setenv("EVALFLEET_TEST_HOST_KEY", host_key)
        result = cli(*args)
        assert sim.stats()["by_status"].get("200", 0) >= 2  # the job sent the host's key
    assert result.code == 0, result.err
    _assert_nothing_left(lepton)
    for root in (isolated, out):
        for path in root.rglob("*"):
            assert not path.is_file() or host_key.encode() not in path.read_bytes(), path


def test_a_token_revoked_mid_run_stops_it_and_names_what_is_left(cli, lepton, tmp_path):
    out = tmp_path / "out"
    run = _start_run(_run_args("lepton_vllm_llama_3_1_8b_instruct", out,
                               "-o", "execution.evaluation_tasks.install_command=sleep 120"))  # fmt: skip
    try:
        invocation_id = _wait_for(_running_invocation, what="jobs submitted")
        (job_id,) = [job.handle["lepton_id"] for job in _record(invocation_id).jobs]
        _wait_for(lambda: lepton.live()["jobs"], what="a live job")
        lepton.faults(token_revoked=True)
        _, err_bytes = run.communicate(timeout=120)  # polled forever before the fix
    finally:
        lepton.faults(token_revoked=False)
        if run.poll() is None:
            run.kill()
            run.communicate()
    err = err_bytes.decode()
    assert run.returncode != 0 and "Traceback" not in err
    (line,) = _errors(err)
    endpoint = f"llama-3-1-8b-{invocation_id}"
    assert "refused the token" in line and "5 times in a row (401)" in line, line
    assert f"endpoint {endpoint}" in line and f"job {job_id}" in line, line
    assert f"evalfleet kill {invocation_id}" in line, line
    assert f"lep endpoint remove -n {endpoint}" in line and f"lep job remove -i {job_id}" in line
    assert len([x for x in err.splitlines() if "warning" in x]) <= 1  # not one per poll
    # Nothing could be deleted with the token refused: what is left is in the store.
    live = lepton.live()
    assert live["deployments"] == [endpoint] and job_id in live["jobs"]
    record = _record(invocation_id)
    assert record.handle["endpoint"] == endpoint and record.handle["endpoint_deleted"] is False
    assert record.handle["runner_pid"] is None
    assert [job.state for job in record.jobs] in (["RUNNING"], ["PENDING"])
    killed = cli("kill", invocation_id)  # the token works again
    assert killed.code == 0, killed.err
    _assert_nothing_left(lepton)
    assert {job.state for job in _record(invocation_id).jobs} == {"KILLED"}
