"""Which tasks run by their framework package, and the job a harness task gets."""

from __future__ import annotations

import pytest

from evalfleet.tasks.catalog import resolve_task_name


def test_launcher_tasks_without_a_builtin_run_by_their_package():
    info = resolve_task_name("lm-evaluation-harness.mmlu_pro")
    assert (info.engine, info.reference.package, info.endpoint_type) == (
        "harness", "nvidia-lm-eval", "completions",
    )  # fmt: skip
    assert resolve_task_name("bfclv3_ast").name == "bfcl.bfclv3_ast"


def test_a_builtin_reproduction_wins_unless_engine_harness_forces_the_package():
    assert resolve_task_name("simple_evals.mmlu_pro").engine == "builtin"
    forced = resolve_task_name("simple_evals.mmlu_pro", engine="harness")
    assert (forced.name, forced.engine) == ("simple_evals.mmlu_pro", "harness")
    with pytest.raises(ValueError, match="evalfleet's own variant"):
        resolve_task_name("evalfleet.math_500", engine="harness")
    with pytest.raises(ValueError, match="no built-in implementation"):
        resolve_task_name("mmath.mmath_en", engine="builtin")


def test_a_harness_job_carries_the_package_and_the_launchers_run_config(write_yaml):
    from evalfleet.config.loader import load_config
    from evalfleet.planner import plan_invocation, with_derived_defaults

    config = write_yaml(
        "target: {api_endpoint: {url: 'http://127.0.0.1:9/v1', model_id: m, api_key_name: KEY}}\n"
        "evaluation:\n"
        "  params: {stop: ['###'], temperature: 0.3}\n"
        "  nemo_evaluator_config: {config: {params: {extra: {language: fr}}}}\n"
        "  tasks:\n"
        "    - name: mmath_en\n"
        "      params: {limit_samples: 5}\n"
        "      nemo_evaluator_config: {config: {params: {parallelism: 3}}}\n"
        "    - {name: ifeval, engine: harness}\n"
    )
    loaded = load_config(str(config))
    invocation = plan_invocation(with_derived_defaults(loaded.model))
    mmath, ifeval = (job.spec for job in invocation.jobs)
    assert mmath["task"] == "mmath.mmath_en" and "task_options" not in mmath
    assert mmath["harness"]["package"] == "nvidia-mmath"
    # The launcher's keys as they are, evalfleet's own params under the same names; the
    # global `stop`, which no package takes, is left to built-in tasks.
    assert mmath["harness"]["run_config"] == {
        "config": {"params": {"temperature": 0.3, "limit_samples": 5, "parallelism": 3,
                              "extra": {"language": "fr"}}}
    }  # fmt: skip
    assert mmath["params"]["parallelism"] == 3 and mmath["params"]["limit_samples"] == 5
    assert ifeval["task"] == "lm-evaluation-harness.ifeval"
    assert ifeval["harness"]["package"] == "nvidia-lm-eval"
    from evalfleet.contract.spec import JobSpec
    from evalfleet.harness.run import preview_command

    command = preview_command(JobSpec.model_validate(mmath))
    assert "--lang fr" in command and "--limit 5" in command and "--parallelism 3" in command
    assert "--temperature 0.3" in command and "$KEY" in command


def test_a_tasks_own_param_that_no_package_takes_is_refused(cli, write_yaml):
    config = write_yaml(
        "target: {api_endpoint: {url: 'http://127.0.0.1:9/v1', model_id: m}}\n"
        "evaluation: {tasks: [{name: mmath_en, params: {stop: ['x']}}]}\n"
    )
    result = cli("run", "--config", str(config), "--dry-run")
    assert result.code == 2
    assert "evaluation.tasks[0].params.stop: not passed to framework packages" in result.err


def test_the_dry_run_shows_the_command_the_package_will_run(cli, write_yaml):
    config = write_yaml(
        "target: {api_endpoint: {url: 'http://127.0.0.1:9/v1', model_id: m}}\n"
        "evaluation: {tasks: [{name: mmath_en, params: {limit_samples: 2}}]}\n"
    )
    out = cli("run", "--config", str(config), "--dry-run").out
    assert "mmath_en = mmath.mmath_en (chat, nvidia-mmath 26.3)" in out
    assert "command:  mmath --model-url http://127.0.0.1:<proxy port> --model-name m" in out
