"""Fixtures for the Lepton plan tests: configs from YAML text, planned as invocation 0123abcd."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evalfleet.config import load_config
from evalfleet.contract import Invocation
from evalfleet.executors import wheel as wheel_module
from evalfleet.executors.wheel import Wheel
from evalfleet.planner import plan_invocation
from tests.helpers import assert_matches_golden, stand_in_wheel

GOLDEN_DIR = Path(__file__).parent / "golden"
INVOCATION_ID = "0123abcd"
OUTPUT_DIR = "/data/results"

# A stand-in for evalfleet's own wheel, so plans do not change with every edit of the
# source: 150,000 bytes, three base64 parts. The end-to-end tests ship the real one.
FAKE_WHEEL_DATA = bytes(range(256)) * 585 + bytes(240)
FAKE_WHEEL = stand_in_wheel(FAKE_WHEEL_DATA)


@pytest.fixture(autouse=True)
def fixed_wheel(monkeypatch: pytest.MonkeyPatch) -> Wheel:
    """Plans ship FAKE_WHEEL (a module that needs the real wheel overrides this fixture)."""
    monkeypatch.setattr(wheel_module, "own_wheel", lambda: FAKE_WHEEL)
    return FAKE_WHEEL


@pytest.fixture
def plan_yaml(tmp_path: Path) -> Callable[..., Invocation]:
    """Write YAML text to a file, load it with `overrides`, plan it as invocation 0123abcd."""

    def plan(
        text: str, overrides: list[str] = (), invocation_id: str = INVOCATION_ID
    ) -> Invocation:
        path = tmp_path / "config.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        loaded = load_config(path, overrides=[*overrides, f"execution.output_dir={OUTPUT_DIR}"])
        return plan_invocation(loaded.model, invocation_id=invocation_id)

    return plan


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@pytest.fixture
def golden() -> Callable[[str, Any], None]:
    """Compare data with golden/<name>.json; EVALFLEET_UPDATE_GOLDEN=1 rewrites the file."""

    def check(name: str, data: Any) -> None:
        assert_matches_golden(GOLDEN_DIR / f"{name}.json", _dump(data))

    return check


# --------------------------------------------------------------------------- configs

VLLM_GUIDE = """\
deployment:
  type: vllm
  checkpoint_path: meta-llama/Llama-3.1-8B-Instruct
  served_model_name: llama-3.1-8b-instruct
  tensor_parallel_size: 1

  lepton_config:
    resource_shape: gpu.1xh200
    min_replicas: 1
    max_replicas: 3
    auto_scaler:
      scale_down:
        no_traffic_timeout: 3600

execution:
  type: lepton
  evaluation_tasks:
    timeout: 3600

evaluation:
  tasks:
    - name: ifeval
"""

NIM_GUIDE = """\
deployment:
  type: nim
  image: nvcr.io/nim/meta/llama-3.1-8b-instruct:1.8.6
  served_model_name: meta/llama-3.1-8b-instruct

  lepton_config:
    resource_shape: gpu.1xh200
    min_replicas: 1
    max_replicas: 3
    auto_scaler:
      scale_down:
        no_traffic_timeout: 3600

execution:
  type: lepton

evaluation:
  tasks:
    - name: ifeval
"""

SGLANG_GUIDE = VLLM_GUIDE.replace("type: vllm", "type: sglang")

NONE_GUIDE = """\
deployment:
  type: none  # Skip deployment

target:
  api_endpoint:
    url: "https://your-endpoint.lepton.ai/v1/chat/completions"
    model_id: your-model-name

execution:
  type: lepton

evaluation:
  tasks:
    - name: mmlu_pro
"""

# Every Lepton knob at once: the guide's envs, mounts and auto-scaling sections, node groups,
# platform defaults (the reference launcher's default.yaml, minus enable_rdma), task mounts.
FULL = """\
deployment:
  type: vllm
  checkpoint_path: meta-llama/Llama-3.1-8B-Instruct
  served_model_name: llama-3.1-8b-instruct
  tensor_parallel_size: 1
  extra_args: --max-model-len 8192
  env_vars:
    VLLM_LOGGING_LEVEL: DEBUG
  lepton_config:
    endpoint_name: Llama_3.1-8B.Instruct
    resource_shape: gpu.1xH200
    min_replicas: 1
    max_replicas: 3
    auto_scaler:
      scale_down:
        no_traffic_timeout: 3600  # Seconds before scaling down
        scale_from_zero: false
    envs:
      HF_TOKEN:
        value_from:
          secret_name_ref: "HUGGING_FACE_HUB_TOKEN"
      CUSTOM_VAR: "direct_value"
    mounts:
      enabled: true
      cache_path: "/path/to/storage"
      mount_path: "/opt/nim/.cache"
    health:
      readiness: {}
      liveness:
        initial_delay_seconds: 600
    api_tokens:
      - value_from:
          token_name_ref: EVAL_ENDPOINT_KEY
    image_pull_secrets: [ngc-pull]
    node_group: ng-h200-01-mjgbgffo

execution:
  type: lepton
  env_vars:
    SHARED: from-execution
  evaluation_tasks:
    resource_shape: cpu.medium
    timeout: 7200
  lepton_platform:
    deployment:
      node_group: ng-ignored-because-lepton-config-sets-one
      endpoint_readiness_timeout: 1800
      queue_priority: high-9000
      platform_defaults:
        health:
          readiness: {}
          liveness: {}
        log:
          enable_collection: true
        metrics: {}
        routing_policy: {}
        queue_config:
          priority_class: mid-4000
          can_be_preempted: false
        user_security_context: {}
        image_pull_secrets: [lepton-default-pull]
        envs:
          - name: CUSTOM_VAR
            value: platform-default
          - name: PLATFORM_ONLY
            value: "1"
    tasks:
      node_group: ng-cpu-01
      api_key_secret: EVAL_ENDPOINT_KEY
      env_vars:
        SHARED: from-lepton-tasks
        HF_TOKEN:
          value_from:
            secret_name_ref: HUGGING_FACE_HUB_TOKEN
      mounts:
        - from: node-nfs:lepton-shared-fs
          path: /shared/evalfleet
          mount_path: /workspace
      image_pull_secrets: [ngc-pull]

env_vars:
  SHARED: from-root
  ROOT_ONLY: root

evaluation:
  env_vars:
    EVAL_ONLY: lit:eval
  tasks:
    - name: ifeval
    - name: gsm8k
      env_vars:
        SHARED: from-task
        TASK_ONLY: lit:gsm8k
"""

# The vLLM guide's model, and a judge deployed beside it for the tasks that ask one: a
# built-in judged task and one run by its framework package. The judge has its own shape,
# port and token secret.
JUDGE = (
    VLLM_GUIDE.replace(
        "    - name: ifeval\n",
        "    - name: simple_evals.AIME_2025\n    - name: mtbench\n",
    )
    + """
judge_deployment:
  type: vllm
  checkpoint_path: meta-llama/Llama-3.3-70B-Instruct
  served_model_name: gpt-4
  port: 8001
  tensor_parallel_size: 2
  lepton_config:
    endpoint_name: judge
    resource_shape: gpu.2xa100
    api_tokens:
      - value_from:
          token_name_ref: JUDGE_API_KEY
"""
)

GUIDE_OVERRIDES = [
    "deployment.checkpoint_path=meta-llama/Llama-3.1-8B-Instruct",
    "deployment.lepton_config.resource_shape=gpu.1xh200",
]

CASES: dict[str, tuple[str, list[str]]] = {
    "vllm_guide": (VLLM_GUIDE, GUIDE_OVERRIDES),
    "nim_guide": (NIM_GUIDE, []),
    "sglang_guide": (SGLANG_GUIDE, GUIDE_OVERRIDES),
    "none_guide": (NONE_GUIDE, []),
    "full": (FULL, []),
    "judge": (JUDGE, GUIDE_OVERRIDES),
}


@pytest.fixture
def plan_case(plan_yaml: Callable[..., Invocation]) -> Callable[[str], Invocation]:
    """Plan one of CASES by name."""

    def plan(name: str) -> Invocation:
        text, overrides = CASES[name]
        return plan_yaml(text, overrides)

    return plan


@pytest.fixture
def case_names() -> list[str]:
    return list(CASES)
