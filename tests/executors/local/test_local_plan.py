"""The local plan: the exact server command, health URL and eval commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalfleet.config import load_config
from evalfleet.exceptions import ConfigError
from evalfleet.executors.local.executor import LocalExecutor
from evalfleet.planner import plan_invocation
from tests.helpers import assert_matches_golden

GOLDEN = Path(__file__).parent / "golden"

CONFIGS = {
    "vllm_gpu": """\
deployment: {type: vllm, checkpoint_path: meta-llama/Llama-3.1-8B-Instruct,
             tensor_parallel_size: 2, extra_args: "--max-model-len 8192"}
execution: {type: local, output_dir: /data/results, cuda_visible_devices: "0,1"}
evaluation: {tasks: [{name: gsm8k}, {name: humaneval, params: {n_samples: 5}}]}
""",
    "nim_docker": """\
deployment: {type: nim, image: "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.8.6"}
execution: {type: local, output_dir: /data/results, use_docker: true}
evaluation: {tasks: [{name: ifeval}]}
""",
    "endpoint_only": """\
target: {api_endpoint: {url: "https://api.example.com/v1", model_id: m, api_key_name: MY_KEY}}
execution: {type: local, output_dir: /data/results, mode: parallel}
evaluation: {params: {parallelism: 8}, tasks: [{name: gsm8k_cot_llama}, {name: evalfleet.mbpp, endpoint_type: completions}]}
""",
}


def _plan(write_yaml, name: str) -> dict:
    config = load_config(write_yaml(CONFIGS[name])).model
    invocation = plan_invocation(config, invocation_id="0123abcd")
    return {
        "plan": LocalExecutor().plan(invocation),
        "job_specs": [job.spec for job in invocation.jobs],
    }


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_local_plan_matches_golden(write_yaml, name):
    actual = json.dumps(_plan(write_yaml, name), indent=2, sort_keys=True) + "\n"
    assert_matches_golden(GOLDEN / f"{name}.json", actual)


def test_endpoint_urls_follow_each_tasks_endpoint_type(write_yaml):
    specs = _plan(write_yaml, "endpoint_only")["job_specs"]
    assert specs[0]["endpoint"]["url"] == "https://api.example.com/v1/chat/completions"
    assert specs[1]["endpoint"]["url"] == "https://api.example.com/v1/completions"
    assert specs[0]["endpoint"]["api_key_name"] == "MY_KEY"
    # The config's parallelism, the task's defaults and the engine's: what will run.
    assert specs[0]["params"] == {
        "parallelism": 8, "temperature": 1e-07, "top_p": 0.9999999, "max_new_tokens": 1024,
        "n_samples": 1, "request_timeout": 600.0, "max_retries": 8, "seed": 1234,
        "stop": specs[0]["params"]["stop"],
    }  # fmt: skip
    # An evalfleet variant follows the endpoint type asked for; a reference task keeps its
    # reference's (bare gsm8k is lm-eval's 5-shot on completions, whatever the target).
    assert specs[1]["task"] == "evalfleet.mbpp"


def test_a_log_likelihood_task_gets_a_completions_endpoint_whatever_the_target_says(
    write_yaml,
):
    config = load_config(
        write_yaml("""\
target: {api_endpoint: {url: "https://api.example.com/v1", model_id: m, type: chat}}
execution: {type: local, output_dir: /data/results}
evaluation: {tasks: [{name: hellaswag}, {name: gsm8k}, {name: ifeval}]}
""")
    ).model
    jobs = plan_invocation(config, invocation_id="0123abcd").jobs
    assert [job.spec["endpoint"]["url"] for job in jobs] == [
        "https://api.example.com/v1/completions",
        "https://api.example.com/v1/completions",
        "https://api.example.com/v1/chat/completions",
    ]
    assert [job.endpoint_type for job in jobs] == ["completions", "completions", "chat"]


def test_a_reference_task_asked_for_another_endpoint_type_is_refused(write_yaml):
    config = load_config(
        write_yaml("""target: {api_endpoint: {url: "https://api.example.com/v1", model_id: m}}
execution: {type: local, output_dir: /data/results}
evaluation: {tasks: [{name: simple_evals.mmlu_pro, endpoint_type: completions}]}
""")
    ).model
    with pytest.raises(
        ConfigError,
        match=r"evaluation.tasks\[0\].endpoint_type: simple_evals.mmlu_pro reproduces "
        r"nvidia-simple-evals 26.3, which runs it on 'chat', got 'completions'",
    ):
        plan_invocation(config, invocation_id="0123abcd")


def test_a_log_likelihood_task_asked_to_use_chat_is_refused(write_yaml):
    config = load_config(
        write_yaml("""\
target: {api_endpoint: {url: "https://api.example.com/v1", model_id: m}}
execution: {type: local, output_dir: /data/results}
evaluation: {tasks: [{name: gsm8k}, {name: hellaswag, endpoint_type: chat}]}
""")
    ).model
    with pytest.raises(
        ConfigError,
        match=r"evaluation.tasks\[1\].endpoint_type: lm-evaluation-harness.hellaswag .*"
        r"log-likelihood and needs 'completions'.*got 'chat'",
    ):
        plan_invocation(config, invocation_id="0123abcd")


@pytest.mark.parametrize(
    ("given", "kind", "expected"),
    [
        ("https://h/v1/chat/completions", "chat", "https://h/v1/chat/completions"),
        ("https://h/v1/chat/completions", "completions", "https://h/v1/completions"),
        ("https://h/v1/", "chat", "https://h/v1/chat/completions"),
        ("http://127.0.0.1:8000", "completions", "http://127.0.0.1:8000/v1/completions"),
        # Azure-style: the query stays after the path (it was appended to the query).
        (
            "https://r.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-06-01",
            "completions",
            "https://r.openai.azure.com/openai/deployments/gpt/completions?api-version=2024-06-01",
        ),
        ("https://h/v1?api-version=1", "chat", "https://h/v1/chat/completions?api-version=1"),
    ],
)
def test_endpoint_url_from_base_or_full_url(given, kind, expected):
    from evalfleet.planner import endpoint_url

    assert endpoint_url(given, kind) == expected


def test_docker_server_listens_on_all_interfaces_behind_a_loopback_port(write_yaml):
    config = load_config(
        write_yaml(CONFIGS["vllm_gpu"]), overrides=["execution.use_docker=true"]
    ).model
    server = LocalExecutor().plan(plan_invocation(config, "0123abcd"))["server"]
    argv = server["argv"]
    assert argv[:2] == ["docker", "run"]
    assert argv[argv.index("--publish") + 1] == "127.0.0.1:8000:8000"
    assert argv[argv.index("--entrypoint") + 1 :][:3] == [
        "vllm",
        "vllm/vllm-openai:latest",
        "serve",
    ]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--gpus") + 1] == '"device=0,1"'


def test_the_dry_run_says_where_the_local_run_differs_from_the_launcher(write_yaml):
    # The launcher runs every server in docker; here a vLLM runs as a host process unless
    # use_docker says otherwise, and the dry run says so (a NIM is always its image).
    host = LocalExecutor.render_plan(_plan(write_yaml, "vllm_gpu")["plan"])
    docker = LocalExecutor.render_plan(_plan(write_yaml, "nim_docker")["plan"])
    assert any(
        line.startswith("# differs from NeMo Evaluator Launcher: execution.use_docker")
        and "127.0.0.1" in line
        for line in host
    )
    assert not any("execution.use_docker" in line for line in docker)
    assert any("served_model_name" in line for line in host + docker)


def test_docker_passes_every_configured_server_variable_by_name(write_yaml):
    # The launcher gives a server container the top-level, execution and deployment env;
    # values stay out of the command line (a secret would show in `ps`).
    text = (
        "env_vars: {SHARED_NOTE: 'lit:x'}\n"
        "deployment: {type: nim, image: 'nvcr.io/nim/meta/llama-3.1-8b-instruct:1.8.6',"
        " env_vars: {NGC_API_KEY: 'host:MY_NGC_KEY'}}\n"
        "execution: {type: local, output_dir: /data/results}\n"
        "evaluation: {tasks: [{name: ifeval}]}\n"
    )
    config = load_config(write_yaml(text)).model
    server = LocalExecutor().plan(plan_invocation(config, invocation_id="0123abcd"))["server"]
    argv = server["argv"]
    passed = {argv[i + 1] for i, word in enumerate(argv) if word == "--env"}
    assert {"SHARED_NOTE", "NGC_API_KEY", "NIM_SERVED_MODEL_NAME"} <= passed
    assert not any("MY_NGC_KEY" in word or word.endswith("=x") for word in argv)
    assert server["env"]["NGC_API_KEY"] == "host:MY_NGC_KEY"
