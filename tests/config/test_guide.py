"""The Lepton user guide's commands and YAML, as written there, work.

`tests/fixtures/guide/*.yaml` are the guide's YAML blocks pasted verbatim.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, GUIDE, REPO

QUICK_START = [
    "run",
    "--config-dir", "examples",
    "--config-name", "lepton_vllm_llama_3_1_8b_instruct",
    "-o", "deployment.checkpoint_path=meta-llama/Llama-3.1-8B-Instruct",
    "-o", "deployment.lepton_config.resource_shape=gpu.1xh200",
]  # fmt: skip
# In-process tests run in a scratch directory: the same command with the examples' full path.
QUICK_START_HERE = [str(EXAMPLES) if arg == "examples" else arg for arg in QUICK_START]


def _env_entry(envs: list[dict], name: str) -> dict:
    (entry,) = [e for e in envs if e["name"] == name]
    return entry


def test_quick_start_dry_run_as_a_user_types_it(tmp_path):
    """The guide's Quick Start, with --dry-run appended, through the installed command."""
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "evalfleet", *QUICK_START, "--dry-run"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**_clean_env(), "EVALFLEET_HOME": str(home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "gpu.1xh200" in out
    assert '"min_replicas": 1' in out and '"max_replicas": 3' in out
    assert '"no_traffic_timeout": 3600' in out
    assert '"secret_name_ref": "HUGGING_FACE_HUB_TOKEN"' in out
    assert "nothing was created or recorded" in out
    assert not home.exists(), "a dry run must not create the store"
    plan_file = Path(out.rstrip().rsplit(" ", 1)[-1])
    assert plan_file.name == "plan.json" and plan_file.is_file()
    plan_file.unlink()
    for parent in (plan_file.parent, plan_file.parent.parent):
        parent.rmdir()  # nothing else was written next to the plan


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("EVALFLEET_")}


def test_quick_start_json_holds_the_exact_lepton_bodies(cli):
    result = cli(*QUICK_START_HERE, "--dry-run", "--json", "--plan-out", "plan.json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    # Lepton's job scripts carry each job.json base64: --json also shows them decoded.
    assert set(document) == {"config", "plan", "job_json"}
    job_ids = [job["job_id"] for job in document["plan"]["jobs"]]
    assert list(document["job_json"]) == job_ids
    assert all(document["job_json"][i]["job_id"] == i for i in job_ids)
    del document["job_json"]
    assert json.loads(Path("plan.json").read_text()) == document
    body = document["plan"]["deployment"]["body"]
    assert document["plan"]["deployment"]["path"] == "/deployments"
    spec = body["spec"]
    requirement = spec["resource_requirement"]
    assert requirement["resource_shape"] == "gpu.1xh200"
    assert (requirement["min_replicas"], requirement["max_replicas"]) == (1, 3)
    assert spec["auto_scaler"] == {"scale_down": {"no_traffic_timeout": 3600}}
    assert _env_entry(spec["envs"], "HF_TOKEN") == {
        "name": "HF_TOKEN",
        "value_from": {"secret_name_ref": "HUGGING_FACE_HUB_TOKEN"},
    }
    assert spec["container"]["command"][:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    tasks = [job["task"] for job in document["plan"]["jobs"]]
    assert tasks == ["ifeval", "gsm8k"]
    assert all(job["path"] == "/jobs" for job in document["plan"]["jobs"])


@pytest.mark.parametrize("snippet", ["vllm", "nim", "none"])
def test_complete_guide_snippets_dry_run(cli, snippet):
    result = cli("run", "--config", str(GUIDE / f"{snippet}.yaml"), "--dry-run", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    config, plan = document["config"], document["plan"]
    assert plan["executor"] == "lepton"
    # Values the guide leaves out get defaults that the dry run shows.
    assert Path(config["execution"]["output_dir"]).is_absolute()
    assert plan["output_dir"].startswith(config["execution"]["output_dir"])
    if snippet == "none":
        assert plan["deployment"] is None
        (job,) = plan["jobs"]
        assert job["task"] == "mmlu_pro"
    else:
        assert config["deployment"]["served_model_name"]
        assert config["execution"]["lepton_platform"]["deployment"]["endpoint_readiness_timeout"]
        requirement = plan["deployment"]["body"]["spec"]["resource_requirement"]
        assert requirement["resource_shape"] == "gpu.1xh200"
        assert (requirement["min_replicas"], requirement["max_replicas"]) == (1, 3)


def test_sglang_is_the_vllm_snippet_with_its_type(cli, tmp_path):
    text = (GUIDE / "vllm.yaml").read_text().replace("type: vllm", "type: sglang")
    path = tmp_path / "sglang.yaml"
    path.write_text(text)
    result = cli("run", "--config", str(path), "--dry-run", "--json")
    assert result.code == 0, result.err
    command = json.loads(result.out)["plan"]["deployment"]["body"]["spec"]["container"]["command"]
    assert command[:3] == ["python3", "-m", "sglang.launch_server"]


def test_group_switch_to_sglang_from_the_vllm_example(cli):
    result = cli(*QUICK_START_HERE, "-o", "deployment=sglang", "--dry-run", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["config"]["deployment"]["type"] == "sglang"
    assert (
        "sglang.launch_server"
        in document["plan"]["deployment"]["body"]["spec"]["container"]["command"]
    )


@pytest.mark.parametrize("fragment", ["auto_scaling", "envs", "mounts", "resource_shape"])
def test_fragment_snippets_load_and_only_lack_what_they_do_not_say(cli, fragment):
    """A fragment alone names no model or task; it must fail only for that, never for its keys."""
    result = cli("run", "--config", str(GUIDE / f"{fragment}.yaml"), "--dry-run")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert lines == [
        "error: deployment.type: missing mandatory value "
        "(expected one of generic, llamacpp, nim, none, sglang, trtllm, vllm)"
    ]


@pytest.mark.parametrize("fragment", ["auto_scaling", "envs", "mounts", "resource_shape"])
def test_fragment_snippets_on_top_of_the_example_reach_the_deployment_body(cli, tmp_path, fragment):
    """Pasted under a config that `defaults:` to the example, each fragment lands in the body."""
    for example in EXAMPLES.glob("*.yaml"):
        (tmp_path / example.name).write_text(example.read_text())
    text = "defaults:\n  - lepton_vllm_llama_3_1_8b_instruct\n  - _self_\n\n"
    text += (GUIDE / f"{fragment}.yaml").read_text()
    path = tmp_path / f"{fragment}_on_example.yaml"
    path.write_text(text)
    result = cli("run", "--config", str(path), "--dry-run", "--json")
    assert result.code == 0, result.err
    spec = json.loads(result.out)["plan"]["deployment"]["body"]["spec"]
    lepton_config = yaml.safe_load((GUIDE / f"{fragment}.yaml").read_text())["deployment"][
        "lepton_config"
    ]
    if fragment == "auto_scaling":
        assert spec["auto_scaler"] == {"scale_down": {"no_traffic_timeout": 3600}}
        assert "scale_from_zero" not in json.dumps(spec)
    elif fragment == "envs":
        assert _env_entry(spec["envs"], "CUSTOM_VAR") == {
            "name": "CUSTOM_VAR",
            "value": "direct_value",
        }
        assert _env_entry(spec["envs"], "HF_TOKEN")["value_from"] == {
            "secret_name_ref": "HUGGING_FACE_HUB_TOKEN"
        }
    elif fragment == "mounts":
        (mount,) = spec["mounts"]
        assert mount["path"] == lepton_config["mounts"]["cache_path"]
        assert mount["mount_path"] == "/opt/nim/.cache"
    else:
        assert spec["resource_requirement"]["resource_shape"] == "gpu.1xh200"


def test_readiness_and_task_timeouts_from_the_guide_keys(cli):
    result = cli(
        *QUICK_START_HERE,
        "-o", "execution.lepton_platform.deployment.endpoint_readiness_timeout=2400",
        "-o", "execution.evaluation_tasks.timeout=7200",
        "--dry-run", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    plan = json.loads(result.out)["plan"]
    assert plan["readiness"]["timeout_s"] == 2400
    script = plan["jobs"][0]["body"]["spec"]["container"]["command"][-1]
    assert " 7200 " in script
