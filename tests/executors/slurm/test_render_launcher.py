"""Batch scripts for configs written for NeMo Evaluator Launcher (its examples' shapes):
servers in containers (pyxis, apptainer), NIM, `deployment.command`, multi-node vLLM (data
parallel, Ray), several instances behind HAProxy. Golden files pin the scripts; a fake
`srun` (recording its argv and env, starting the endpoint simulator for a server) runs the
multi-node ones with bash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalfleet.executors.slurm.executor import SlurmExecutor
from evalfleet.executors.slurm.render import render_scripts

from .helpers import override, port_open, process_gone, write_executable

HEAD = """\
defaults:
  - execution: slurm/default
  - deployment: {deployment}
  - _self_
execution:
  hostname: login.example.com
  username: alice
  account: llm-eval
"""

# slurm_vllm_advanced_hf_caching + nested env: pyxis, one node, mounts and env per container.
PYXIS = (
    HEAD.format(deployment="vllm")
    + """\
  sbatch_comment: nightly
  mounts:
    deployment:
      /lustre/hf_home: /root/.cache/huggingface
    evaluation:
      /lustre/hf_home: /root/.cache/huggingface
    mount_home: false
  env_vars:
    deployment:
      HF_HUB_OFFLINE: lit:1
    evaluation:
      MY_NOTE: lit:for the tasks
env_vars:
  HF_DATASETS_OFFLINE: lit:0
deployment:
  checkpoint_path: null
  hf_model_handle: meta-llama/Llama-3.1-8B-Instruct
  served_model_name: meta-llama/Llama-3.1-8B-Instruct
  tensor_parallel_size: 1
  data_parallel_size: 8
  extra_args: "--max-model-len 32768"
  pre_cmd: pip install my-plugin
  env_vars:
    HF_TOKEN: host:EVALFLEET_TEST_HF_TOKEN
evaluation:
  tasks:
    - name: gsm8k
"""
)

# slurm_vllm_checkpoint_path, in apptainer.
APPTAINER = (
    HEAD.format(deployment="vllm")
    + """\
  container_runtime: apptainer
  mounts:
    /lustre/cache: /cache-in
deployment:
  checkpoint_path: /lustre/ckpt/llama-3.1-8b
  served_model_name: meta-llama/Llama-3.1-8B-Instruct
  tensor_parallel_size: 1
  data_parallel_size: 8
evaluation:
  tasks:
    - name: gsm8k
"""
)

# slurm_nim
NIM = (
    HEAD.format(deployment="nim")
    + """\
  mounts:
    deployment:
      /lustre/nim/cache: /opt/nim/.cache
deployment:
  image: nvcr.io/nim/meta/llama-3.2-1b-instruct:latest
  served_model_name: meta/llama-3.2-1b-instruct
  env_vars:
    NGC_API_KEY: host:EVALFLEET_TEST_NGC_KEY
evaluation:
  tasks:
    - name: gsm8k
"""
)

# slurm_vllm_multinode_dp: deployment.command over two nodes (vLLM data parallel).
DP_COMMAND = (
    HEAD.format(deployment="vllm")
    + """\
  num_nodes: 2
  mounts:
    mount_home: false
deployment:
  checkpoint_path: null
  hf_model_handle: nvidia/NVIDIA-Nemotron-Nano-9B-v2
  served_model_name: nvidia/NVIDIA-Nemotron-Nano-9B-v2
  tensor_parallel_size: 1
  data_parallel_size: 16
  data_parallel_size_local: 8
  port: {port}
  extra_args: "--trust-remote-code"
  command: >-
    bash -c 'if [ "$SLURM_PROCID" -eq 0 ]; then vllm serve ${deployment.hf_model_handle}
    --data-parallel-size ${deployment.data_parallel_size} --data-parallel-size-local
    ${deployment.data_parallel_size_local} --data-parallel-address $MASTER_IP
    --port ${deployment.port} --served-model-name ${deployment.served_model_name}; else
    vllm serve ${deployment.hf_model_handle} --headless --data-parallel-start-rank
    ${deployment.data_parallel_size_local} --data-parallel-address $MASTER_IP; fi'
evaluation:
  tasks:
    - name: gsm8k
"""
)

# slurm_vllm_multinode_multiinstance_ray_tp_pp: 2 instances x 2 nodes, Ray, HAProxy.
RAY_INSTANCES = (
    HEAD.format(deployment="vllm_ray")
    + """\
  num_nodes: 4
  num_instances: 2
  mounts:
    deployment:
      /lustre/hf_home: /root/.cache/huggingface
    mount_home: false
deployment:
  image: vllm/vllm-openai:v0.15.1
  checkpoint_path: null
  hf_model_handle: deepseek-ai/DeepSeek-R1
  served_model_name: deepseek-ai/DeepSeek-R1
  tensor_parallel_size: 8
  pipeline_parallel_size: 2
  port: {port}
evaluation:
  tasks:
    - name: gsm8k
"""
)

# slurm_vllm_multinode_ray_tp_pp: one instance over two nodes.
RAY = RAY_INSTANCES.replace("  num_nodes: 4\n  num_instances: 2\n", "  num_nodes: 2\n")

CASES = {
    "launcher-pyxis": PYXIS,
    "launcher-apptainer": APPTAINER,
    "launcher-nim": NIM,
    "launcher-dp-command": DP_COMMAND,
    "launcher-ray": RAY,
    "launcher-ray-instances-haproxy": RAY_INSTANCES,
}


@pytest.fixture(autouse=True)
def _host_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALFLEET_TEST_HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("EVALFLEET_TEST_NGC_KEY", "nvapi-secret")


def _plan(plan_config, case: str, port: int = 8000, *overrides: str, **kwargs: str):
    return plan_config(CASES[case].replace("{port}", str(port)), *overrides, **kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_launcher_configs_match_golden_files(plan_config, golden, case: str) -> None:
    (script,) = render_scripts(_plan(plan_config, case))
    golden(f"{case}.sbatch", script.text)
    assert "secret_value" not in script.text and "nvapi-secret" not in script.text


@pytest.mark.parametrize("case", sorted(CASES))
def test_launcher_scripts_are_valid_bash(plan_config, case: str) -> None:
    bash = shutil.which("bash", path="/usr/bin:/bin")
    if bash is None:
        pytest.skip("bash is not installed")
    (script,) = render_scripts(_plan(plan_config, case))
    result = subprocess.run([bash, "-n"], input=script.text, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_pyxis_server_gets_the_launchers_mounts_env_and_gpus(plan_config) -> None:
    inv = _plan(plan_config, "launcher-pyxis")
    (script,) = render_scripts(inv)
    text = script.text
    assert "#SBATCH --gres=gpu:8\n" in text and "#SBATCH --exclusive\n" in text
    assert "#SBATCH --comment=nightly\n" in text
    assert "--container-image=vllm/vllm-openai:latest" in text
    assert "--container-mounts=/lustre/hf_home:/root/.cache/huggingface" in text
    assert "--no-container-mount-home" in text
    # The server gets deployment env, the tasks evaluation env; secrets only by name.
    server = text.split("# Model server")[1].split("evalfleet_server_tail()")[0]
    assert "export HF_HUB_OFFLINE=1" in server and "MY_NOTE" not in server
    assert "HF_TOKEN" in server.split("--container-env=")[1].split()[0]
    tasks = text.split("# The tasks' environment")[1]
    assert "export MY_NOTE='for the tasks'" in tasks and "HF_HUB_OFFLINE" not in tasks
    # pre_cmd runs in the container before the command (the launcher's deployment_pre_cmd).
    assert "pip install my-plugin\n}" in server
    assert "vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size=1" in server
    assert inv.jobs[0].spec["endpoint"]["url"] == "http://127.0.0.1:8000/v1/completions"


def test_several_instances_are_called_through_the_proxy(plan_config) -> None:
    inv = _plan(plan_config, "launcher-ray-instances-haproxy")
    assert inv.jobs[0].spec["endpoint"]["url"] == "http://127.0.0.1:5009/v1/completions"


def test_the_dry_run_lists_where_evalfleet_differs(plan_config) -> None:
    plan = SlurmExecutor().plan(_plan(plan_config, "launcher-pyxis"))
    lines = SlurmExecutor.render_plan(plan)
    assert any(
        line.startswith("# differs from NeMo Evaluator Launcher: execution.mounts.evaluation")
        for line in lines
    )


# --------------------------------------------------------------------------- fake srun

FAKE_SRUN = """#!PYTHON
import json, os, re, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_RECORD"], "a") as f:
    env = {k: os.environ[k] for k in ("MASTER_IP", "ALL_NODE_IPS", "HF_TOKEN") if k in os.environ}
    f.write(json.dumps({"pid": os.getpid(), "argv": argv, "env": env}) + "\\n")
n = 0
while n < len(argv) and argv[n].startswith("-"):
    n += 1
opts, rest = argv[:n], argv[n:]
if rest[:2] == ["hostname", "--ip-address"]:
    node = next(a.split("=", 1)[1] for a in opts if a.startswith("--nodelist="))
    print("127.0.0.%d" % (int(node.removeprefix("node")) + 1))
    sys.exit(0)
words = " ".join(argv)
if "haproxy" in words:
    cfg = next(a for a in opts if a.startswith("--container-mounts=")).split("=", 1)[1]
    port = re.search(r"bind \\*:(\\d+)", open(cfg.split(":")[0]).read()).group(1)
    host = "127.0.0.1"
else:
    port = re.search(r"--port[= ](\\d+)", words).group(1)
    host = os.environ["MASTER_IP"]
os.execv(sys.executable, [sys.executable, "-m", "evalfleet.testing.endpoint", "--host", host, "--port", port])
"""

FAKE_EVAL = """#!/bin/bash
python3 - "$3" <<'PY' || exit 9
import json, sys, urllib.request
url = json.load(open(sys.argv[1]))["endpoint"]["url"].split("/v1/")[0] + "/health"
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5).close()
PY
echo "$3 server-ok" >> RECORD
"""


def _run_with_fake_srun(plan_config, tmp_path: Path, case: str, port: int, nodes: int):
    bin_dir = tmp_path / "bin"
    record = tmp_path / "srun.jsonl"
    calls = tmp_path / "calls.txt"
    write_executable(bin_dir / "srun", FAKE_SRUN.replace("PYTHON", sys.executable))
    write_executable(
        bin_dir / "scontrol",
        f"#!/bin/bash\nfor ((i = 0; i < {nodes}; i++)); do echo node$i; done\n",
    )
    # This batch node is node0; its address is the loopback one the simulator binds.
    write_executable(
        bin_dir / "hostname",
        "#!/bin/bash\n[[ $1 == --ip-address ]] && echo 127.0.0.1 || echo node0\n",
    )
    fake_eval = write_executable(
        bin_dir / "fake-evalfleet", FAKE_EVAL.replace("RECORD", str(calls))
    )
    out = tmp_path / "results"
    inv = _plan(
        plan_config,
        case,
        port,
        override("execution.evalfleet_command", str(fake_eval)),
        output_dir=str(out),
    )
    (script,) = render_scripts(inv)
    path = tmp_path / script.name
    path.write_text(script.text)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_RECORD": str(record),
        "SLURM_JOB_NODELIST": f"node[0-{nodes - 1}]",
        "SLURM_JOB_ID": "4242",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    result = subprocess.run(
        ["bash", str(path)], env=env, capture_output=True, text=True, timeout=120
    )
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    return result, runs, calls


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ray_instances_behind_haproxy_run_with_a_fake_srun(
    plan_config, tmp_path, free_port
) -> None:
    result, runs, calls = _run_with_fake_srun(
        plan_config, tmp_path, "launcher-ray-instances-haproxy", free_port, nodes=4
    )
    assert result.returncode == 0, result.stderr
    assert calls.read_text().count("server-ok") == 1  # the task reached the proxy
    lookups = [r for r in runs if r["argv"][-2:] == ["hostname", "--ip-address"]]
    assert [r["argv"][0] for r in lookups] == [
        "--nodelist=node1",
        "--nodelist=node2",
        "--nodelist=node3",
    ]
    # Both instances start at once: their records come in either order.
    servers = sorted(
        (r for r in runs if "--ntasks=2" in r["argv"]),
        key=lambda r: next(a for a in r["argv"] if a.startswith("--nodelist=")),
    )
    assert len(servers) == 2
    for run, nodelist, master in zip(
        servers, ("node0,node1", "node2,node3"), ("127.0.0.1", "127.0.0.3"), strict=True
    ):
        argv = run["argv"]
        assert f"--nodelist={nodelist}" in argv and "--nodes=2" in argv
        assert "--container-image=vllm/vllm-openai:v0.15.1" in argv
        assert "--container-mounts=/lustre/hf_home:/root/.cache/huggingface" in argv
        assert "--no-container-mount-home" in argv and "--mpi=pmix" in argv
        assert run["env"]["MASTER_IP"] == master
        assert run["env"]["ALL_NODE_IPS"] == "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"
        assert "ray start --head" in argv[-1] and "--distributed-executor-backend ray" in argv[-1]
    (proxy,) = [r for r in runs if "--container-image=haproxy:latest" in r["argv"]]
    assert "--nodelist=node0" in proxy["argv"]
    cfg = Path(
        next(a for a in proxy["argv"] if a.startswith("--container-mounts="))
        .split("=")[1]
        .split(":")[0]
    )
    assert f"server instance1 127.0.0.3:{free_port} check" in cfg.read_text()
    for run in [*servers, proxy]:
        assert process_gone(run["pid"]), "a server outlived the script"
    assert not port_open(5009) and not port_open(free_port)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_data_parallel_command_runs_on_both_nodes(plan_config, tmp_path, free_port) -> None:
    result, runs, calls = _run_with_fake_srun(
        plan_config, tmp_path, "launcher-dp-command", free_port, nodes=2
    )
    assert result.returncode == 0, result.stderr
    assert calls.read_text().count("server-ok") == 1
    (server,) = [r for r in runs if "--ntasks=2" in r["argv"]]
    assert "--nodelist=node0,node1" in server["argv"] and "--nodes=2" in server["argv"]
    assert "--data-parallel-size-local 8 --data-parallel-address $MASTER_IP" in server["argv"][-1]
    assert server["env"]["MASTER_IP"] == "127.0.0.1"
    assert process_gone(server["pid"])


# slurm_vllm_auxiliary_judge: the judge is an auxiliary deployment with a node of its own.
AUX_JUDGE = (
    HEAD.format(deployment="vllm")
    + """\
deployment:
  checkpoint_path: null
  hf_model_handle: meta-llama/Llama-3.1-8B-Instruct
  served_model_name: llama
  port: {port}
auxiliary_deployments:
  judge:
    type: vllm
    image: vllm/vllm-openai:latest
    checkpoint_path: null
    hf_model_handle: meta-llama/Llama-3.3-70B-Instruct
    served_model_name: judge
    port: {judge_port}
evaluation:
  tasks:
    - name: simple_evals.math_test_500
"""
)

FAKE_EVAL_WITH_JUDGE = """#!/bin/bash
python3 - "$3" <<'PY' || exit 9
import json, os, sys, urllib.request
spec = json.load(open(sys.argv[1]))
open_ = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
for url in (spec["endpoint"]["url"], os.path.expandvars(spec["params"]["judge"]["url"])):
    open_(url.split("/v1")[0] + "/health", timeout=5).close()
print(os.path.expandvars(spec["params"]["judge"]["url"]))
PY
echo "$3 both-ok" >> RECORD
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_an_auxiliary_judge_runs_on_a_node_of_its_own(plan_config, tmp_path, free_port) -> None:
    judge_port = free_port + 1 if free_port < 65535 else free_port - 1
    text = AUX_JUDGE.replace("{port}", str(free_port)).replace("{judge_port}", str(judge_port))
    bin_dir = tmp_path / "bin"
    record, calls = tmp_path / "srun.jsonl", tmp_path / "calls.txt"
    write_executable(bin_dir / "srun", FAKE_SRUN.replace("PYTHON", sys.executable))
    write_executable(bin_dir / "scontrol", "#!/bin/bash\necho node0\necho node1\n")
    write_executable(
        bin_dir / "hostname",
        "#!/bin/bash\n[[ $1 == --ip-address ]] && echo 127.0.0.1 || echo node0\n",
    )
    fake_eval = write_executable(
        bin_dir / "fake-evalfleet", FAKE_EVAL_WITH_JUDGE.replace("RECORD", str(calls))
    )
    inv = plan_config(
        text,
        override("execution.evalfleet_command", str(fake_eval)),
        output_dir=str(tmp_path / "results"),
    )
    (job,) = inv.jobs
    # The judge's address is known only when the job runs; job.json names the variable.
    assert job.spec["params"]["judge"]["url"].startswith(
        f"http://${{EVALFLEET_JUDGE_HOST}}:{judge_port}/"
    )
    (script,) = render_scripts(inv)
    assert "#SBATCH --nodes=2" in script.text  # the model's node and the judge's
    path = tmp_path / script.name
    path.write_text(script.text)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_RECORD": str(record),
        "SLURM_JOB_NODELIST": "node[0-1]",
        "SLURM_JOB_ID": "4243",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    result = subprocess.run(
        ["bash", str(path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert calls.read_text().count("both-ok") == 1  # the task reached the model and the judge
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    servers = [r for r in runs if any(a.startswith("--container-image=vllm") for a in r["argv"])]
    by_node = {next(a for a in r["argv"] if a.startswith("--nodelist=")): r for r in servers}
    assert set(by_node) == {"--nodelist=node0", "--nodelist=node1"}
    assert f"--port {judge_port}" in by_node["--nodelist=node1"]["argv"][-1]
    assert by_node["--nodelist=node1"]["env"]["MASTER_IP"] == "127.0.0.2"
    for run in servers:
        assert process_gone(run["pid"]), "a server outlived the script"
