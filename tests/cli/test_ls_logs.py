"""`ls tasks` and `ls runs` that fit the terminal and say how each run went; `logs` with
--task, --server and --tail. Runs are real: `evalfleet run` against the simulator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from evalfleet.store import InvocationRecord, InvocationStore, JobRecord, NewJob
from evalfleet.testing import run_simulator
from tests.engine.conftest import oracle, write_dataset

TWO_TASKS = """\
target: {{api_endpoint: {{url: {url}/v1, model_id: sim-model}}}}
execution: {{type: local, output_dir: results}}
evaluation:
  tasks:
    - {{name: adds, dataset: {{path: {data}}}, scorer: numeric, params: {{limit_samples: 20}}}}
    - {{name: adds_exact, dataset: {{path: {data}}}, scorer: exact_match, params: {{limit_samples: 8}}}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


# ----------------------------------------------------------------------------- ls tasks


@pytest.mark.parametrize("columns", [80, 100])
def test_ls_tasks_fits_the_terminal(cli, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    result = cli("ls", "tasks")
    assert result.code == 0, result.err
    assert _widest(result.out) <= columns, max(result.out.splitlines(), key=len)
    # The names a config needs stay whole; what had to be cut says so.
    assert "lm-evaluation-harness.gsm8k_cot_llama " in result.out
    assert "genai_perf_eval.genai_perf_summarization_completions " in result.out
    assert "…" in result.out


def test_ls_tasks_wide_and_json_keep_everything(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    wide = cli("ls", "tasks", "--wide").out
    assert _widest(wide) > 100 and "…" not in wide
    assert "nvidia-simple-evals 26.3" in wide and "built on first run" in wide
    rows = json.loads(cli("ls", "tasks", "--json").out)
    humaneval = next(r for r in rows if r["name"] == "simple_evals.humaneval")
    assert humaneval["reference"] == "nvidia-simple-evals 26.3"
    assert "description" in humaneval and "files" in humaneval


def test_ls_tasks_piped_without_columns_is_not_cut(cli, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    out = cli("ls", "tasks").out  # captured: not a terminal
    assert "…" not in out, [line for line in out.splitlines() if "…" in line][:2]
    assert "nvidia-simple-evals 26.3" in out


# ----------------------------------------------------------------------------- ls runs


@pytest.fixture
def finished_run(cli, write_yaml, tmp_path: Path) -> str:
    data = write_dataset(tmp_path)
    with run_simulator(answers=oracle()) as sim:
        config = write_yaml(TWO_TASKS.format(url=sim.base_url, data=data))
        result = cli("run", "--config", str(config))
    assert result.code == 0, result.err
    return result.out.strip().splitlines()[-1]


def test_ls_runs_shows_state_tasks_and_scores(cli, finished_run, monkeypatch):
    (row,) = json.loads(cli("ls", "runs", "--json").out)
    assert row["invocation_id"] == finished_run
    assert (row["state"], row["state_checked"]) == ("SUCCESS", True)
    results = {
        task: json.loads((Path(row["output_dir"]) / task / "results.json").read_text())
        for task in ("adds", "adds_exact")
    }
    assert row["scores"] == [
        {
            "task": task,
            "metric": results[task]["headline_metric"],
            "value": results[task]["metrics"][results[task]["headline_metric"]]["value"],
            "n": results[task]["metrics"][results[task]["headline_metric"]]["n"],
        }
        for task in ("adds", "adds_exact")
    ]
    assert row["scores"][0]["value"] == 0.75  # the oracle is right 3 times in 4
    monkeypatch.setenv("COLUMNS", "200")
    table = cli("ls", "runs").out
    header, line = table.splitlines()
    assert header.split() == ["ID", "CREATED", "STATE", "EXECUTOR", "MODEL", "TASKS", "SCORE"]
    assert "SUCCESS" in line and "adds,adds_exact" in line and "adds 0.75, adds_exact" in line


def test_ls_runs_fits_80_columns(cli, finished_run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    table = cli("ls", "runs").out
    assert _widest(table) <= 80
    assert "SUCCESS" in table and finished_run in table


def _record(invocation_id: str, executor: str, state: str, runner_pid: int | None) -> None:
    with InvocationStore() as store:
        store.create_invocation(
            invocation_id=invocation_id,
            executor=executor,
            deployment_type="none",
            model="m",
            output_dir=f"/nowhere/{invocation_id}",
            config={"execution": {"type": executor, "hostname": "no-such-host.invalid"}},
            jobs=[NewJob(task="gsm8k", output_dir=f"/nowhere/{invocation_id}/gsm8k")],
            handle={"runner_pid": runner_pid},
        )
        store.update_job(f"{invocation_id}.0", state=state)


def test_ls_runs_state_from_what_this_machine_knows(cli, monkeypatch):
    # A local run whose runner is gone did not finish (what `status` records as FAILED).
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    _record("aaaa0001", "local", "RUNNING", int(gone.stdout))
    _record("aaaa0002", "local", "RUNNING", os.getpid())  # this process: alive
    # Slurm's state is on its cluster: ls shows the last recorded one, unchecked.
    _record("aaaa0003", "slurm", "RUNNING", None)
    _record("aaaa0004", "slurm", "KILLED", None)
    rows = {r["invocation_id"]: r for r in json.loads(cli("ls", "runs", "--json").out)}
    assert [rows[f"aaaa000{i}"]["state"] for i in (1, 2, 3, 4)] == [
        "FAILED", "RUNNING", "RUNNING", "KILLED"
    ]  # fmt: skip
    assert [rows[f"aaaa000{i}"]["state_checked"] for i in (1, 2, 3, 4)] == [True, True, False, True]
    assert all(row["scores"] == [] for row in rows.values())
    monkeypatch.setenv("COLUMNS", "120")
    lines = {line.split()[0]: line for line in cli("ls", "runs").out.splitlines()[1:]}
    assert " RUNNING? " in lines["aaaa0003"] and " FAILED " in lines["aaaa0001"]


# ----------------------------------------------------------------------------- logs


@pytest.fixture
def served_run(cli, write_yaml, tmp_path: Path) -> str:
    """A run whose model server evalfleet started (the simulator as a generic deployment),
    so that it has a server log beside each task's log."""
    data = write_dataset(tmp_path)
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in oracle().items())
    )
    command = f"{sys.executable} -m evalfleet.testing.endpoint --port {{port}} --answers {answers}"
    config = write_yaml(f"""\
deployment: {{type: generic, command: "{command}", port: {_free_port()}, served_model_name: sim-model}}
execution: {{type: local, output_dir: results, endpoint_readiness_timeout: 60}}
evaluation:
  tasks:
    - {{name: adds, dataset: {{path: {data}}}, scorer: numeric, params: {{limit_samples: 12}}}}
    - {{name: adds_exact, dataset: {{path: {data}}}, scorer: exact_match, params: {{limit_samples: 8}}}}
""")  # fmt: skip
    result = cli("run", "--config", str(config))
    assert result.code == 0, result.err
    return result.out.strip().splitlines()[-1]


def _sources(out: str) -> set[str]:
    return {line.split("]", 1)[0] + "]" for line in out.splitlines()}


def test_logs_filters_by_task_server_and_tail(cli, served_run):
    everything = cli("logs", served_run)
    assert everything.code == 0, everything.err
    assert _sources(everything.out) == {"[server]", "[adds]", "[adds_exact]"}

    task = cli("logs", served_run, "--task", "adds_exact")
    assert task.code == 0 and _sources(task.out) == {"[adds_exact]"}
    assert task.out.splitlines() == [
        line for line in everything.out.splitlines() if line.startswith("[adds_exact] ")
    ]

    server = cli("logs", served_run, "--server")
    assert server.code == 0 and _sources(server.out) == {"[server]"}

    both = cli("logs", served_run, "--server", "--task", "adds")
    assert _sources(both.out) == {"[server]", "[adds]"}

    tail = cli("logs", served_run, "--tail", "2")
    by_source = {name: [line for line in everything.out.splitlines() if line.startswith(name)]
                 for name in ("[server]", "[adds]", "[adds_exact]")}  # fmt: skip
    assert tail.out.splitlines() == [line for lines in by_source.values() for line in lines[-2:]]
    last = cli("logs", served_run, "--task", "adds", "-n", "1").out.splitlines()
    assert last == by_source["[adds]"][-1:]


def test_logs_follow_with_filters_ends_when_the_run_has_ended(cli, served_run):
    # --follow on an ended run prints what there is and returns (the run process is gone).
    followed = cli("logs", served_run, "--follow", "--task", "adds", "--tail", "3")
    assert followed.code == 0
    assert len(followed.out.splitlines()) == 3 and _sources(followed.out) == {"[adds]"}


def test_logs_filters_that_match_nothing_are_one_line(cli, finished_run):
    unknown = cli("logs", finished_run, "--task", "nope")
    assert unknown.code == 2
    assert unknown.err.strip() == (
        f"error: --task: 'nope' is not a task of invocation {finished_run} "
        "(its tasks: adds, adds_exact)"
    )
    # A run against an endpoint that already ran has no server log to show.
    no_server = cli("logs", finished_run, "--server")
    assert no_server.code == 2 and len(no_server.err.strip().splitlines()) == 1
    assert "has no server log (deployment.type none" in no_server.err
    one_job = cli("logs", f"{finished_run}.0", "--task", "adds")
    assert one_job.code == 2 and "names one job already" in one_job.err
    assert cli("logs", finished_run, "--tail", "-1").code == 2


def _remote_record(executor: str, per_task: bool, handles: list[dict]) -> InvocationRecord:
    jobs = tuple(
        JobRecord(f"bbbb0001.{i}", "bbbb0001", i, task, "RUNNING", "", f"/here/{task}", handle, 0.0, 0.0)
        for i, (task, handle) in enumerate(zip(("ifeval", "gsm8k"), handles, strict=True))
    )  # fmt: skip
    config = {"execution": {"type": executor, "job_per_task": per_task}}
    return InvocationRecord(
        "bbbb0001", 0.0, executor, "vllm", "m", "/cluster/bbbb0001", config,
        {"endpoint": "ep-1"}, jobs,
    )  # fmt: skip


@pytest.mark.parametrize("per_task", [False, True])
def test_slurm_logs_are_labelled_by_task_and_server(per_task):
    """Slurm's logs are on its cluster (no cluster here): which ones each filter picks."""
    from evalfleet.executors.base import LogFilter
    from evalfleet.executors.slurm.executor import _log_sources
    from evalfleet.executors.slurm.states import ChainView, Probe

    chains = ["c0", "c1"] if per_task else ["c0", "c0"]
    record = _remote_record("slurm", per_task, [{"chain": c} for c in chains])
    views = {c: ChainView(c, job_ids=[f"10{i}"]) for i, c in enumerate(dict.fromkeys(chains))}
    probe = Probe(views, {}, True)
    sources = _log_sources(record, list(record.jobs), set(chains), probe)

    def names(only: LogFilter) -> list[str]:
        return [s.name for s in sources if only.wants(s)]

    assert names(LogFilter()) == [s.name for s in sources]
    if per_task:
        assert names(LogFilter(task="gsm8k")) == ["slurm 101", "gsm8k"]
        assert names(LogFilter(server=True)) == ["ifeval server", "gsm8k server"]
        assert names(LogFilter(server=True, task="gsm8k")) == ["slurm 101", "gsm8k server", "gsm8k"]
    else:  # one batch job runs both tasks: its output is no one task's
        assert names(LogFilter(task="gsm8k")) == ["gsm8k"]
        assert names(LogFilter(server=True)) == ["server"]


def test_lepton_logs_are_labelled_by_task_and_server():
    from evalfleet.executors.base import LogFilter
    from evalfleet.executors.lepton.executor import LeptonExecutor

    record = _remote_record("lepton", False, [{"lepton_id": "j1"}, {"lepton_id": "j2"}])
    sources = LeptonExecutor().log_sources(record, list(record.jobs), whole=True)
    assert [s.name for s in sources if LogFilter(server=True).wants(s)] == ["endpoint"]
    assert [s.where for s in sources if LogFilter(task="gsm8k").wants(s)] == ["job:j2"]
