"""NeMo Evaluator Launcher's own dry run of a launcher config, reduced to comparable facts.

Payload: {"fixtures": [{"name", "path", "overrides": [...], "env": {NAME: value},
"migrate": bool, "workdir": dir}]}. Answer: {name: {"facts": {...}} | {"error": "..."}}.

For each fixture the launcher loads the config as its CLI does (`RunConfig.from_hydra` with
the `-o` overrides; first `nel-migrate-config`'s `migrate()` when asked, for configs written
before 0.2's `host:`/`lit:` env var prefixes) and runs `run_eval(cfg, dry_run=True)`. The
dry run must succeed. Facts are then read from what the launcher itself produced:

- Slurm: the sbatch scripts its dry run renders (`_create_slurm_sbatch_script`, captured;
  no ssh happens in a dry run): #SBATCH resources, the deployment srun's container image
  and mounts, the server command it base64-encodes into `deployment_cmd.sh`.
- Local: `cfg.deployment` as its run.sh uses it (image, command, port, mounts).
- Lepton: its dry run validates only, so the submitting path runs with the four API calls
  replaced by recorders (endpoint create/ready/url, job create): the endpoint spec comes
  from its `generate_lepton_spec`, each job's env from what it would submit.
- Every task: its resolved `harness.task`, endpoint type, the merged `config.params`
  (`get_eval_factory_config`, global then task) and env vars (`collect_eval_env_vars`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from driver_io import answer, read_payload


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value} if prefix else {}


def _env_fact(value: Any) -> str:
    from nemo_evaluator_launcher.common.env_vars import (
        EnvVarFromHost,
        EnvVarLiteral,
        EnvVarRuntime,
    )

    if isinstance(value, EnvVarFromHost):
        return f"host:{value.host_var_name}"
    if isinstance(value, EnvVarLiteral):
        return f"lit:{value.value}"
    if isinstance(value, EnvVarRuntime):
        return f"runtime:{value.runtime_var_name}"
    if isinstance(value, dict):  # Lepton value_from
        ref = value.get("value_from", {})
        return "secret:" + str(ref.get("secret_name_ref") or ref.get("token_name_ref"))
    return f"lit:{value}"


def _joined_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def _option(words: list[str], name: str) -> str | None:
    for index, word in enumerate(words):
        if word == name and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def _slurm_facts(script: str) -> dict[str, Any]:
    sbatch: dict[str, Any] = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            words = line.split()[1:]
            key = words[0].lstrip("-").split("=")[0]
            value = words[0].split("=", 1)[1] if "=" in words[0] else " ".join(words[1:])
            sbatch[key] = value if value else True
    facts: dict[str, Any] = {
        "gres": sbatch.get("gres"),
        "gpus_per_node": sbatch.get("gpus-per-node"),
        "nodes": int(sbatch["nodes"]) if "nodes" in sbatch else None,
        "exclusive": bool(sbatch.get("exclusive")),
    }
    for line in _joined_lines(script):
        if "srun" in line and "deployment_cmd.sh" in line and "--container-image" in line:
            words = shlex.split(line.strip().rstrip("&"), posix=True)
            facts["image"] = _option(words, "--container-image")
            mounts = _option(words, "--container-mounts") or ""
            facts["mounts"] = sorted(m for m in mounts.split(",") if m)
            encoded = re.search(r'echo "([A-Za-z0-9+/=]+)" \| base64 -d > deployment_cmd\.sh', line)
            if encoded:
                facts["command"] = base64.b64decode(encoded.group(1)).decode()
            break
    return facts


def _task_facts(cfg: Any, task: Any, mapping: Any) -> dict[str, Any]:
    from nemo_evaluator_launcher.common.env_vars import collect_eval_env_vars
    from nemo_evaluator_launcher.common.helpers import get_api_key_name, get_eval_factory_config
    from nemo_evaluator_launcher.common.mapping import get_task_definition_for_job

    definition = get_task_definition_for_job(
        task_query=task.name,
        base_mapping=mapping,
        container=task.get("container"),
        endpoint_type=task.get("endpoint_type"),
    )
    merged = get_eval_factory_config(cfg, task)
    params = ((merged.get("config") or {}).get("params")) or {}
    adapter = ((merged.get("target") or {}).get("api_endpoint") or {}).get("adapter_config")
    env = collect_eval_env_vars(cfg, task, get_api_key_name(cfg))
    return {
        "name": f"{definition['harness']}.{definition['task']}",
        "endpoint_type": definition["endpoint_type"],
        "image": task.get("container") or definition["container"],
        "params": _resolve_auxiliary_refs(_flatten(params), cfg),
        "adapter_config": adapter,
        "env": {name: _env_fact(value) for name, value in env.items()},
    }


def _lepton_submission(cfg: Any) -> dict[str, Any]:
    """Run the launcher's submitting path with its Lepton API calls recorded, not made."""
    from nemo_evaluator_launcher.executors.lepton import executor as lepton
    from nemo_evaluator_launcher.executors.lepton.deployment_helpers import generate_lepton_spec

    seen: dict[str, Any] = {"endpoints": [], "jobs": []}

    def create_endpoint(config: Any, name: str) -> bool:
        seen["endpoints"].append(generate_lepton_spec(config))
        return True

    def create_job(**kwargs: Any) -> tuple[bool, None]:
        seen["jobs"].append(kwargs)
        return True, None

    patched = {
        "create_lepton_endpoint": create_endpoint,
        "wait_for_lepton_endpoint_ready": lambda name, timeout=0: True,
        "get_lepton_endpoint_url": lambda name: f"https://{name}.lepton.example",
        "create_lepton_job": create_job,
        "delete_lepton_endpoint": lambda name: True,
        "delete_lepton_job": lambda name: True,
    }
    saved = {name: getattr(lepton, name) for name in patched}
    try:
        for name, function in patched.items():
            setattr(lepton, name, function)
        with contextlib.redirect_stdout(io.StringIO()):
            lepton.LeptonExecutor.execute_eval(cfg, dry_run=False)
    finally:
        for name, function in saved.items():
            setattr(lepton, name, function)
    return seen


def _to_plain(value: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_plain(item) for item in value]
    return value


def _overrides_to_nemo_evaluator_config(text: str) -> tuple[str, list[str]]:
    """0.1's `overrides: {dotted.key: value}` as the launcher's own refusal message says to
    write it since 0.2: the same keys nested under `nemo_evaluator_config`."""
    import yaml

    data = yaml.safe_load(text)
    evaluation = data.get("evaluation") or {}
    moved = []
    for where, section in [("evaluation", evaluation)] + [
        (f"evaluation.tasks[{i}]", task) for i, task in enumerate(evaluation.get("tasks") or [])
    ]:
        overrides = section.pop("overrides", None)
        if not overrides:
            continue
        nested = section.setdefault("nemo_evaluator_config", {})
        for dotted, value in overrides.items():
            node = nested
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        moved.append(f"{where}.overrides -> {where}.nemo_evaluator_config")
    if not moved:
        return text, []
    return yaml.safe_dump(data, sort_keys=False), moved


def _resolve_auxiliary_refs(params: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """`auxiliary_deployments.NAME.model_id` / `.X_url` as the launcher resolves them in the
    job: the served model name, and the URL of that server (its host known only at run time)."""
    resolved = {}
    for key, value in params.items():
        match = re.fullmatch(r"auxiliary_deployments\.(\w+)\.(\w+)", str(value))
        if match:
            aux = cfg.auxiliary_deployments[match.group(1)]
            field = match.group(2)
            if field == "model_id":
                value = str(aux.served_model_name)
            elif field.endswith("_url"):
                path = aux.endpoints[field[: -len("_url")]]
                value = f"http://<{match.group(1)} host>:{aux.port}{path}"
        resolved[key] = value
    return resolved


def facts_for(fixture: dict[str, Any]) -> dict[str, Any]:
    from nemo_evaluator_launcher.api.functional import RunConfig, run_eval
    from nemo_evaluator_launcher.common import mapping as mapping_module
    from nemo_evaluator_launcher.executors.slurm import executor as slurm

    path = Path(fixture["path"])
    notes = []
    if fixture.get("migrate"):
        from nemo_evaluator_launcher.cli.migrate_config import migrate

        text, changes, unmigrated = migrate(path.read_text())
        if unmigrated:
            raise ValueError(f"nel-migrate-config cannot migrate: {unmigrated}")
        text, moved = _overrides_to_nemo_evaluator_config(text)
        changes = [*changes, *moved]
        migrated = Path(fixture["workdir"]) / path.name
        migrated.write_text(text)
        path = migrated
        notes = [change.strip() for change in changes]
    cfg = RunConfig.from_hydra(config=str(path), hydra_overrides=list(fixture["overrides"]))
    scripts: list[str] = []
    original = slurm._create_slurm_sbatch_script

    def capture(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        scripts.append(result.cmd)
        return result

    slurm._create_slurm_sbatch_script = capture
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            run_eval(cfg, dry_run=True)
    finally:
        slurm._create_slurm_sbatch_script = original

    mapping = mapping_module.load_tasks_mapping()
    executor = cfg.execution.type
    deployment_cfg = cfg.deployment
    facts: dict[str, Any] = {
        "executor": executor,
        "migrated": notes,
        "deployment": {"type": deployment_cfg.type},
        "tasks": [_task_facts(cfg, task, mapping) for task in cfg.evaluation.tasks],
    }
    deployment = facts["deployment"]
    if deployment_cfg.type != "none":
        deployment["port"] = deployment_cfg.get("port")
        deployment["served_model_name"] = deployment_cfg.get("served_model_name")
    if executor == "slurm":
        deployment.update(_slurm_facts(scripts[0]) if scripts else {})
        if deployment_cfg.type == "none":
            for key in ("image", "command", "mounts"):
                deployment.pop(key, None)
    elif executor == "local" and deployment_cfg.type != "none":
        deployment["image"] = deployment_cfg.get("image")
        deployment["command"] = deployment_cfg.get("command")
    elif executor == "lepton":
        seen = _lepton_submission(cfg)
        if seen["endpoints"]:
            spec = _to_plain(seen["endpoints"][0])
            container = spec.get("container") or {}
            resources = spec.get("resource_requirement") or {}
            deployment["image"] = container.get("image")
            deployment["command"] = container.get("command")
            deployment["resource_shape"] = resources.get("resource_shape")
            deployment["env"] = {
                env["name"]: _env_fact(env.get("value") if "value" in env else env)
                for env in spec.get("envs", [])
            }
        for task, job in zip(facts["tasks"], seen["jobs"], strict=True):
            task["env"] = {name: _env_fact(value) for name, value in job["env_vars"].items()}
            task["resource_shape"] = job["resource_shape"]
    return facts


def _without_later_harnesses(harnesses: list[str]) -> Any:
    """The launcher's task mapping without `harnesses`: configs written before 0.2 name
    tasks bare (`ifeval`), unique then; 0.2's mapping added `codec.ifeval` and the like."""
    from nemo_evaluator_launcher.common import mapping

    kept = {
        key: value
        for key, value in mapping.__dict__["_original"]().items()
        if key[0] not in harnesses
    }

    def load(*args: Any, **kwargs: Any) -> Any:
        return kept if not args and not kwargs else mapping.__dict__["_original"](*args, **kwargs)

    return load


def _patch_mapping(load: Any) -> None:
    import nemo_evaluator_launcher.executors.lepton.executor as lepton
    import nemo_evaluator_launcher.executors.local.executor as local
    import nemo_evaluator_launcher.executors.slurm.executor as slurm
    from nemo_evaluator_launcher.common import mapping

    for module in (mapping, lepton, local, slurm, sys.modules[__name__]):
        if hasattr(module, "load_tasks_mapping"):
            module.load_tasks_mapping = load


def main() -> None:
    payload = read_payload()
    results: dict[str, Any] = {}
    # Its execution database lives under $HOME, fixed when the launcher is imported.
    home = tempfile.mkdtemp()
    os.environ["HOME"] = home
    from nemo_evaluator_launcher.common import mapping

    loaded = mapping.load_tasks_mapping()  # seconds each time; the launcher reads it often

    def full_mapping(*args: Any, **kwargs: Any) -> Any:
        return loaded if not args and not kwargs else mapping.__dict__["_original"](*args, **kwargs)

    mapping.__dict__["_original"] = mapping.load_tasks_mapping
    base_env = dict(os.environ)
    for fixture in payload["fixtures"]:
        os.environ.clear()
        os.environ.update(base_env)
        os.environ.update(fixture.get("env", {}))
        with tempfile.TemporaryDirectory() as workdir:
            os.chdir(workdir)
            fixture = {**fixture, "workdir": workdir}
            without = fixture.get("mapping_without") or []
            _patch_mapping(_without_later_harnesses(without) if without else full_mapping)
            try:
                results[fixture["name"]] = {"facts": _to_plain(facts_for(fixture))}
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                results[fixture["name"]] = {"error": f"{type(exc).__name__}: {first}"}
    answer(results)


if __name__ == "__main__":
    main()
