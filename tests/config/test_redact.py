"""Secret values never reach the printed config, plan.json or the plan's scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalfleet.config.redact import is_secret_key, redact

SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize("key", ["HF_TOKEN", "api_key", "OPENAI_API_KEY", "password", "MY_SECRET"])
def test_secret_looking_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["api_key_name", "secret_name_ref", "token_name_ref", "api_key_secret", "url"]
)
def test_keys_that_hold_names_are_not_secrets(key):
    assert not is_secret_key(key)


# The launcher's `config.params.extra.tokenizer` names a model (its local_vllm_logprobs
# example): hidden, the dry run showed the served model name as *** everywhere.
@pytest.mark.parametrize(
    "key", ["tokenizer", "tokenizer_backend", "TOKENIZERS_PARALLELISM", "author"]
)
def test_tokenizers_and_authors_are_not_secrets(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize("key", ["HF_AUTH_TOKEN", "tokenizer_api_key"])
def test_a_secret_stays_secret_beside_those_words(key):
    assert is_secret_key(key)


def test_redact_keeps_references():
    config = {"envs": {"HF_TOKEN": {"value_from": {"secret_name_ref": "HF"}}, "API_KEY": SECRET}}
    assert redact(config) == {
        "envs": {"HF_TOKEN": {"value_from": {"secret_name_ref": "HF"}}, "API_KEY": "***"}
    }


@pytest.mark.parametrize("executor", ["local", "lepton", "slurm"])
def test_dry_run_never_shows_a_literal_secret(cli, write_yaml, executor):
    lepton_key = (
        ", lepton_platform: {tasks: {env_vars: {MY_KEY: {value_from: {secret_name_ref: K}}}}}"
        if executor == "lepton"
        else ""
    )
    path = write_yaml(
        f"""\
target: {{api_endpoint: {{url: "https://h/v1", model_id: m, api_key_name: MY_KEY}}}}
execution: {{type: {executor}, output_dir: /tmp/out, env_vars: {{WANDB_API_KEY: "{SECRET}"}}{lepton_key}}}
env_vars: {{HF_TOKEN: "{SECRET}"}}
evaluation: {{env_vars: {{OPENAI_API_KEY: "{SECRET}"}}, tasks: [{{name: gsm8k}}]}}
"""
    )
    plan_out = Path("plan.json")
    text = cli("run", "--config", str(path), "--dry-run", "--plan-out", str(plan_out))
    assert text.code == 0, text.err
    as_json = cli("run", "--config", str(path), "--dry-run", "--json", "--plan-out", str(plan_out))
    assert as_json.code == 0
    for output in (text.out, text.err, as_json.out, plan_out.read_text()):
        assert SECRET not in output
    assert "***" in json.dumps(json.loads(as_json.out)["config"])


def test_a_reference_to_a_variable_is_shown_a_literal_is_not():
    config = {
        "env_vars": {"HF_TOKEN": "host:HF_TOKEN", "API_KEY": "runtime:KEY", "PASSWORD": "lit:x"}
    }
    assert redact(config) == {
        "env_vars": {"HF_TOKEN": "host:HF_TOKEN", "API_KEY": "runtime:KEY", "PASSWORD": "***"}
    }
    assert redact({"HF_TOKEN": "host:not a name"}) == {"HF_TOKEN": "***"}
