"""The command surface: every command exists, reads the store, and is honest about what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalfleet.store import InvocationStore, NewJob


def _record(invocation_id: str, executor: str = "lepton", tasks=("ifeval", "gsm8k")) -> None:
    with InvocationStore() as store:
        store.create_invocation(
            invocation_id=invocation_id,
            executor=executor,
            deployment_type="vllm",
            model="llama-3.1-8b-instruct",
            output_dir=f"/results/{invocation_id}",
            config={"execution": {"type": executor}},
            jobs=[NewJob(task=t, output_dir=f"/results/{invocation_id}/{t}") for t in tasks],
        )


def test_help_lists_every_command(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("run", "status", "logs", "kill", "resume", "ls", "info", "export"):
        assert f"  {command} " in result.out
    ls_help = cli("ls", "--help")
    assert "tasks" in ls_help.out and "runs" in ls_help.out


def test_ls_runs_empty_store(cli, isolated):
    result = cli("ls", "runs", "--json")
    assert result.code == 0
    assert json.loads(result.out) == []
    assert not isolated.exists(), "listing must not create the store"


def test_ls_runs_newest_first_with_required_fields(cli):
    _record("aaaa1111", "local", ("gsm8k",))
    _record("bbbb2222", "lepton")
    result = cli("ls", "runs", "--json")
    rows = json.loads(result.out)
    assert [r["invocation_id"] for r in rows] == ["bbbb2222", "aaaa1111"]
    assert rows[0]["executor"] == "lepton" and rows[0]["tasks"] == ["ifeval", "gsm8k"]
    assert isinstance(rows[0]["created_at"], float)
    table = cli("ls", "runs")
    assert "bbbb2222" in table.out and "ifeval,gsm8k" in table.out
    only_local = json.loads(cli("ls", "runs", "--json", "--executor", "local").out)
    assert [r["invocation_id"] for r in only_local] == ["aaaa1111"]


def test_ls_runs_since_rejects_garbage(cli):
    result = cli("ls", "runs", "--since", "yesterday-ish")
    assert result.code == 2
    assert "--since" in result.err


def test_status_json_by_prefix_and_job_id(cli):
    _record("c0ffee01")
    rows = json.loads(cli("status", "c0f", "--json").out)
    assert [(r["job_id"], r["task"]) for r in rows] == [
        ("c0ffee01.0", "ifeval"),
        ("c0ffee01.1", "gsm8k"),
    ]
    assert {r["state"] for r in rows} == {"UNKNOWN"}
    assert all(set(r) == {"invocation_id", "job_id", "task", "state", "detail"} for r in rows)
    (one,) = json.loads(cli("status", "c0ffee01.1", "--json").out)
    assert one["task"] == "gsm8k"


def test_ambiguous_prefix_lists_candidates(cli):
    _record("abc00001")
    _record("abc00002")
    result = cli("status", "abc")
    assert result.code == 2
    assert "ambiguous" in result.err
    assert "abc00001" in result.err and "abc00002" in result.err


def test_unknown_id(cli):
    result = cli("info", "ffff")
    assert result.code == 2
    assert result.err.strip() == "error: no invocation matches 'ffff'"


def test_info_shows_where_things_are(cli):
    _record("dddd4444")
    info = json.loads(cli("info", "dddd", "--json").out)
    assert info["output_dir"] == "/results/dddd4444"
    assert [j["output_dir"] for j in info["jobs"]] == [
        "/results/dddd4444/ifeval", "/results/dddd4444/gsm8k",
    ]  # fmt: skip


def test_ls_tasks(cli):
    rows = json.loads(cli("ls", "tasks", "--json").out)
    by_name = {r["name"]: r for r in rows}
    assert {"lm-evaluation-harness.ifeval", "simple_evals.mmlu_pro", "evalfleet.mbpp"} <= set(
        by_name
    )
    assert all(name.count(".") == 1 for name in by_name)
    assert by_name["simple_evals.humaneval"]["runnable"] == "yes"
    assert by_name["lm-evaluation-harness.gsm8k_cot_llama"]["runnable"] == "yes"
    ifeval = by_name["lm-evaluation-harness.ifeval"]
    assert (ifeval["reference"], ifeval["reference_task"]) == ("nvidia-lm-eval 26.3", "ifeval")
    builtin = [r for r in rows if r["runs"] == "built-in"]
    assert all(bool(r["reference"]) != bool(r["differs"]) for r in builtin)
    # Every task of every pinned framework package, and every launcher task, is listed once.
    from evalfleet.harness.frameworks import all_tasks
    from evalfleet.tasks.catalog import launcher_index

    assert len(by_name) == len(rows)
    assert {t.qualified_name for t in all_tasks()} <= set(by_name)
    assert {f"{h}.{t}" for h, tasks in launcher_index().items() for t in tasks} <= set(by_name)
    mmath = by_name["mmath.mmath_en"]
    assert (mmath["runs"], mmath["package"], mmath["judge"]) == (
        "package",
        "nvidia-mmath 26.3",
        False,
    )
    assert by_name["mtbench.mtbench"]["judge"] is True
    assert by_name["nemo_skills.ns_aime2025"]["runs"] == "launcher image only"
    table = cli("ls", "tasks").out
    assert "nvidia-simple-evals 26.3" in table and "evalfleet.mbpp: 0-shot chat" in table
    assert "mmath.mmath_en" in table and "nvidia-mmath 26.3" in table
    assert "mmath.mmath_en" not in cli("ls", "tasks", "--builtin").out


def test_tasks_filter(cli, write_yaml):
    path = write_yaml(
        "target: {api_endpoint: {url: 'http://127.0.0.1:9/v1', model_id: m}}\n"
        "evaluation: {tasks: [{name: gsm8k}, {name: ifeval}]}\n"
    )
    plan = json.loads(cli("run", "--config", str(path), "-t", "ifeval", "--dry-run", "--json").out)
    assert [t["task"] for t in plan["plan"]["tasks"]] == ["ifeval"]
    missing = cli("run", "--config", str(path), "-t", "mbpp", "--dry-run")
    assert missing.code == 2 and "not in evaluation.tasks" in missing.err


def test_json_without_dry_run_is_a_usage_error(cli, write_yaml, isolated):
    path = write_yaml(
        "target: {api_endpoint: {url: 'http://127.0.0.1:9/v1', model_id: m}}\n"
        "evaluation: {tasks: [{name: gsm8k}]}\n"
    )
    result = cli("run", "--config", str(path), "--json")
    assert result.code == 2 and "--json and --plan-out go with --dry-run" in result.err
    assert not isolated.exists()


def test_dry_run_shows_every_parameter_the_engine_will_use(cli, write_yaml):
    """The planner fills in the task's and the engine's defaults (parallelism 32 was the
    engine's alone, and no dry run showed it); the engine, reading that job file, uses
    exactly those values."""
    from evalfleet import api
    from evalfleet.contract.spec import JobSpec
    from evalfleet.engine.runner import effective_params
    from evalfleet.tasks.registry import create_task

    path = write_yaml(
        'target: {api_endpoint: {url: "http://127.0.0.1:9/v1", model_id: m}}\n'
        "evaluation: {tasks: [{name: gsm8k}, {name: mmlu_pro, params: {max_new_tokens: 100}}]}\n"
    )
    shown = cli("run", "--config", str(path), "--dry-run")
    assert shown.code == 0, shown.err
    lines = [line for line in shown.out.splitlines() if line.startswith("[")]
    # lm-eval's gsm8k as the launcher runs it (its defaults and lm-eval's), on completions.
    assert any(
        line.endswith("gsm8k = lm-evaluation-harness.gsm8k (completions): max_new_tokens=256 "
                      "max_retries=8 n_samples=1 parallelism=32 request_timeout=600.0 seed=1234 "
                      "stop=['Question:', '</s>', '<|im_end|>'] temperature=1e-07 top_p=0.9999999"
                      " | options: num_fewshot=5")
        for line in lines
    ), lines  # fmt: skip
    assert any(
        "mmlu_pro = simple_evals.mmlu_pro (chat): max_new_tokens=100 " in line for line in lines
    ), lines
    for job in api.plan_run(path).invocation.jobs:
        spec = JobSpec.model_validate(job.spec)
        task = create_task(spec.task, endpoint_type=job.endpoint_type)
        used = effective_params(spec, task).model_dump(exclude_none=True)
        assert used == job.spec["params"]


def test_keep_endpoint_is_refused_where_the_backend_creates_no_endpoint(cli, write_yaml):
    from evalfleet import api

    path = write_yaml(
        'target: {api_endpoint: {url: "http://127.0.0.1:9/v1", model_id: m}}\n'
        "evaluation: {tasks: [{name: gsm8k}]}\n"
    )
    result = cli("run", "--config", str(path), "--keep-endpoint")
    assert result.code == 2
    assert "error: --keep-endpoint: execution.type local creates no endpoint to keep" in result.err
    assert api.list_runs() == []  # refused before anything was recorded


# ------------------------------------------------------- run: the launcher's command shapes

# The launcher's examples (0.1.x) tell users, in their header comments:
#   nemo-evaluator-launcher run --config-dir packages/nemo-evaluator-launcher/examples \
#     --config-name local_llama_3_1_8b_instruct -o execution.output_dir=...
LAUNCHER_EXAMPLE = """\
# Run this config with `nemo-evaluator-launcher run --config-dir examples --config-name local_llama_3_1_8b_instruct`.
defaults:
  - execution: local
  - deployment: none
  - _self_

execution:
  output_dir: llama_3_1_8b_instruct_results

target:
  api_endpoint:
    model_id: meta/llama-3.1-8b-instruct
    url: https://integrate.api.nvidia.com/v1/chat/completions
    api_key_name: NGC_API_KEY

evaluation:
  tasks:
    - name: ifeval
    - name: evalfleet.mbpp
"""


def _launcher_example(root):
    examples = root / "packages" / "nemo-evaluator-launcher" / "examples"
    examples.mkdir(parents=True)
    (examples / "local_llama_3_1_8b_instruct.yaml").write_text(LAUNCHER_EXAMPLE)
    return "packages/nemo-evaluator-launcher/examples"


def test_run_flags_are_the_launchers(cli):
    """-c/-d are the launcher's --config-name/--config-dir; --detach has no short form."""
    shown = cli("run", "--help").out
    assert "-c, --config-name NAME" in shown and "-d, --config-dir DIR" in shown
    assert "--config FILE" in shown and "-c, --config FILE" not in shown
    assert "--detach" in shown and "-d, --detach" not in shown
    assert "-n, --dry-run" in shown


@pytest.mark.parametrize(
    "shape",
    [
        ["--config-dir", "{dir}", "--config-name", "local_llama_3_1_8b_instruct",
         "-o", "execution.output_dir={out}", "--dry-run"],
        ["-d", "{dir}", "-c", "local_llama_3_1_8b_instruct", "--override",
         "execution.output_dir={out}", "-n"],
        # Older headers put the override after the name without -o, and say --dry_run.
        ["--config-dir", "{dir}", "--config-name", "local_llama_3_1_8b_instruct",
         "execution.output_dir={out}", "--dry_run"],
        ["--config", "{dir}/local_llama_3_1_8b_instruct.yaml", "-o",
         "++execution.output_dir={out}", "--dry-run"],
    ],
)  # fmt: skip
def test_the_launchers_header_command_works_as_written(cli, tmp_path, shape):
    directory = _launcher_example(tmp_path / "work")
    out = tmp_path / "results"
    args = [arg.format(dir=directory, out=out) for arg in shape]
    result = cli("run", *args)
    assert result.code == 0, result.err
    (plan,) = out.glob("*/plan.json")
    written = json.loads(plan.read_text())
    assert [t["task"] for t in written["plan"]["tasks"]] == ["ifeval", "evalfleet.mbpp"]
    assert written["config"]["execution"]["output_dir"] == str(out)


def test_config_mode_raw_takes_the_file_as_it_is(cli, tmp_path):
    directory = _launcher_example(tmp_path / "work")
    path = f"{directory}/local_llama_3_1_8b_instruct.yaml"
    refused = cli("run", "--config", path, "--config-mode", "raw", "-o", "a.b=1", "-n")
    assert refused.code == 2 and "--config-mode raw" in refused.err
    assert cli("run", "--config", path, "--config-mode=raw", "-n", "--json").code == 0


def test_config_output_saves_a_config_that_reruns(cli, tmp_path):
    """`--config-output DIR` (the launcher's) saves the complete config, secrets redacted;
    `run --config THAT --config-mode raw` plans the same tasks again."""
    from evalfleet import api

    directory = _launcher_example(tmp_path / "work")
    run_plan = api.plan_run(config_dir=directory, config_name="local_llama_3_1_8b_instruct")
    saved = api.save_config(run_plan, tmp_path / "saved")
    assert saved == tmp_path / "saved" / f"{run_plan.invocation.invocation_id}_config.yml"
    again = cli("run", "--config", str(saved), "--config-mode", "raw", "-n", "--json")
    assert again.code == 0, again.err
    assert [t["task"] for t in json.loads(again.out)["plan"]["tasks"]] == [
        "ifeval",
        "evalfleet.mbpp",
    ]


# --------------------------------------------------------- a dry run writes only locally

TARGET = "target: {api_endpoint: {url: 'http://h:1/v1/chat/completions', model_id: m}}\n"
DRY_RUNS = {
    "slurm": (
        "execution:\n  type: slurm\n  hostname: login.cluster.example\n  username: me\n"
        "  account: acct\n  output_dir: {cluster}\n  local_output_dir: {local}\n"
    ),
    "lepton": "execution:\n  type: lepton\n  output_dir: {local}\n",
    "local": "execution:\n  type: local\n  output_dir: {local}\n",
}


def _tree(root):
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.parametrize("backend", sorted(DRY_RUNS))
def test_a_dry_run_writes_only_the_plan_in_the_local_output_dir(
    cli, tmp_path, monkeypatch, backend
):
    """A remote Slurm host's output dir is a path on the cluster: a dry run once created
    it here (as root, /lustre/...). Every backend writes plan.json on this machine only."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cluster = tmp_path / "cluster" / "lustre" / "results"
    local = tmp_path / "local-results"
    config = tmp_path / "run.yaml"
    config.write_text(
        DRY_RUNS[backend].format(cluster=cluster, local=local)
        + TARGET
        + "evaluation: {tasks: [{name: gsm8k}]}\n"
    )
    before = _tree(tmp_path)
    result = cli("run", "--config", str(config), "--dry-run")
    assert result.code == 0, result.err
    (plan,) = local.glob("*/plan.json")
    assert str(plan) in result.out + result.err
    assert not (tmp_path / "cluster").exists()
    created = _tree(tmp_path) - before
    assert created == {
        Path("local-results"),
        plan.parent.relative_to(tmp_path),
        plan.relative_to(tmp_path),
    }
    # --plan-out: that file and nothing else.
    elsewhere = tmp_path / "plans" / "p.json"
    before = _tree(tmp_path)
    assert cli("run", "--config", str(config), "-n", "--plan-out", str(elsewhere)).code == 0
    assert _tree(tmp_path) - before == {Path("plans"), Path("plans/p.json")}
