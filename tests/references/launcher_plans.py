"""Launcher configs (tests/fixtures/launcher_configs) planned by evalfleet and by NeMo
Evaluator Launcher 0.2.6's own dry run, each reduced to the same comparable facts.

The launcher's side runs in the reference venv (driver `launcher_plans`); it takes a few
seconds per config (its task index is slow to load), so its facts are cached under
`$EVALFLEET_CACHE_DIR/launcher_plans/` (default ~/.cache/evalfleet), keyed by the
fixture, its entry in sources.yaml and the driver's source.

Facts (both sides):
  executor; deployment: type, image, port, command (argv, options order-free), and on
  Slurm the #SBATCH GPUs (gres, gpus-per-node, nodes, exclusive), on Lepton the resource
  shape; per task: the resolved `harness.task`, endpoint type, the `config.params` the
  config sets (global then task), env var names with where each value comes from
  (`host:VAR`, `lit:value`, `secret:REF`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.references.harness import DRIVERS, run_reference

FIXTURES = Path(__file__).parents[1] / "fixtures" / "launcher_configs"
INVOCATION_ID = "0123abcd"


def sources() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((FIXTURES / "sources.yaml").read_text())


def _cache_dir() -> Path:
    root = os.environ.get("EVALFLEET_CACHE_DIR") or Path.home() / ".cache" / "evalfleet"
    return Path(root) / "launcher_plans"


def _key(name: str, entry: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for part in (
        (FIXTURES / f"{name}.yaml").read_bytes(),
        json.dumps(entry, sort_keys=True).encode(),
        (DRIVERS / "launcher_plans.py").read_bytes(),
    ):
        digest.update(part)
    return digest.hexdigest()[:16]


def launcher_facts(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{name: {"facts": ...} | {"error": ...}} from the launcher, cached."""
    cache = _cache_dir()
    found: dict[str, dict[str, Any]] = {}
    missing = []
    for name, entry in entries.items():
        path = cache / f"{name}-{_key(name, entry)}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
        else:
            missing.append(name)
    if missing:
        fixtures = [
            {
                "name": name,
                "path": str(FIXTURES / f"{name}.yaml"),
                "overrides": entries[name].get("overrides", []),
                "env": entries[name].get("env", {}),
                "migrate": entries[name].get("migrate", False),
                "mapping_without": entries[name].get("mapping_without", []),
            }
            for name in missing
        ]
        answers = run_reference("launcher_plans", {"fixtures": fixtures})
        cache.mkdir(parents=True, exist_ok=True)
        for name in missing:
            (cache / f"{name}-{_key(name, entries[name])}.json").write_text(
                json.dumps(answers[name], indent=1, sort_keys=True)
            )
            found[name] = answers[name]
    return found


@contextmanager
def _environment(env: dict[str, str]):  # type: ignore[no-untyped-def]
    saved = dict(os.environ)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as workdir:
        os.environ.update(env)
        os.chdir(workdir)  # relative output dirs land here, not in the checkout
        try:
            yield
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(saved)


def evalfleet_plan(name: str, entry: dict[str, Any]) -> Any:
    """evalfleet's dry run of the fixture with its recorded overrides (api.plan_run)."""
    from evalfleet.api import plan_run

    with _environment(entry.get("env", {})):
        return plan_run(
            FIXTURES / f"{name}.yaml",
            overrides=list(entry.get("overrides", [])),
            invocation_id=INVOCATION_ID,
        )


# -- facts from evalfleet's plan ---------------------------------------------------------


_SERVER_WORDS = re.compile(r"\b(vllm serve|launch_server|trtllm-serve|llama-server|start_server)\b")


def command_shape(command: Any) -> Any:
    """A server command as positionals and options, so option order does not matter. In a
    script (`bash -c '...'`, Ray's bootstrap) only its server invocations are compared."""
    if command is None:
        return None
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    if words[:2] == ["bash", "-c"] and len(words) == 3:
        return command_shape(words[2])
    text = command if isinstance(command, str) else shlex.join(words)
    if "\n" in text or "&&" in text or ";" in text:
        segments = re.split(r"\n|&&|;|\bthen\b|\belse\b", text)
        servers = [s.strip() for s in segments if _SERVER_WORDS.search(s)]
        if servers:
            return [_shape(shlex.split(s)) for s in servers]
    return _shape(words)


def _in_container(command: Any, image: str | None) -> Any:
    """What a `docker run` line runs in its image (the launcher's local command is that);
    with `--entrypoint X image args`, X args. Any other command as it is."""
    words = shlex.split(command) if isinstance(command, str) else list(command or [])
    if words[:2] != ["docker", "run"] or image not in words:
        return command
    after = words[words.index(image) + 1 :]
    entrypoint = _option(words[: words.index(image)], "--entrypoint")
    return [entrypoint, *after] if entrypoint else after


def _shape(words: list[str]) -> dict[str, Any]:
    positionals: list[str] = []
    options: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("--"):
            if "=" in word:
                options.append(word)
            elif index + 1 < len(words) and not words[index + 1].startswith("--"):
                options.append(f"{word}={words[index + 1]}")
                index += 1
            else:
                options.append(word)
        else:
            positionals.append(word)
        index += 1
    return {"positionals": positionals, "options": sorted(options)}


def _joined(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def _option(words: list[str], name: str) -> str | None:
    for index, word in enumerate(words):
        if word == name and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def _slurm_facts(text: str) -> dict[str, Any]:
    """#SBATCH GPUs and the model server's srun (image, command)."""
    sbatch: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH "):
            option = line.split()[1]
            key, _, value = option.lstrip("-").partition("=")
            sbatch[key] = value or True
    facts: dict[str, Any] = {
        "gres": sbatch.get("gres"),
        "gpus_per_node": sbatch.get("gpus-per-node"),
        "nodes": int(sbatch["nodes"]) if "nodes" in sbatch else None,
        "exclusive": bool(sbatch.get("exclusive")),
    }
    lines = _joined(text)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if "image" not in facts and "srun" in stripped and "--container-image" in stripped:
            words = shlex.split(stripped.split("srun", 1)[1].split(" bash -c ")[0])
            facts["image"] = _option(words, "--container-image")
            tail = "\n".join([stripped, *lines[index + 1 :]]).split(" bash -c ", 1)
            if len(tail) == 2:
                # the server's srun runs `bash -c '<evalfleet's prologue line>\n<command>'`
                lexer = shlex.shlex(tail[1], posix=True)
                lexer.whitespace_split = True
                body = next(iter(lexer))
                facts["command"] = "\n".join(body.splitlines()[1:])
            else:
                facts["command"] = " ".join(w for w in words if not w.startswith("-"))
    return facts


def _lepton_env(entries: list[dict[str, Any]]) -> dict[str, str]:
    env = {}
    for item in entries:
        if item["name"].startswith("EVALFLEET_"):
            continue  # how evalfleet reaches its endpoint and ships its wheel
        ref = item.get("value_from") or {}
        if ref:
            env[item["name"]] = "secret:" + str(
                ref.get("secret_name_ref") or ref.get("token_name_ref")
            )
        else:
            env[item["name"]] = f"lit:{item.get('value')}"
    return env


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value} if prefix else {}


def job_param_sources(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a launcher `config.params` key lives in evalfleet's job.json, most specific first:
    a harness task's nemo-evaluator run config, the engine's params, `extra.*` task options."""
    found = []
    harness = job.get("harness") or {}
    run_params = ((harness.get("run_config") or {}).get("config") or {}).get("params")
    if run_params:
        found.append(_flatten(run_params))
    params = dict(job.get("params") or {})
    judge = params.pop("judge", None)
    found.append(_flatten(params))
    found.append(
        {f"extra.{key}": value for key, value in _flatten(job.get("task_options")).items()}
    )
    if judge:
        found.append({f"extra.judge.{key}": value for key, value in _flatten(judge).items()})
    return found


def evalfleet_facts(run_plan: Any, launcher: dict[str, Any]) -> dict[str, Any]:
    """evalfleet's plan as the same facts as `launcher` (its keys pick what is looked up).

    A task's env on local and Slurm is `config.env.job_env`, the one reading of the env
    layers both backends pass on (Slurm: secret-looking names through sbatch's environment,
    the rest on the task's line); on Lepton the job spec's envs.
    """
    from evalfleet.config.env import job_env

    plan = run_plan.plan
    config = run_plan.config
    deployment_cfg = config.get("deployment") or {}
    deployment: dict[str, Any] = {"type": deployment_cfg.get("type", "none")}
    executor = plan["executor"]
    if deployment["type"] != "none":
        deployment["port"] = deployment_cfg.get("port")
        deployment["served_model_name"] = deployment_cfg.get("served_model_name")
    if executor == "slurm":
        facts = _slurm_facts(plan["scripts"][0]["text"])
        if deployment["type"] == "none":
            facts = {k: v for k, v in facts.items() if k not in ("image", "command")}
        deployment.update(facts)
    elif executor == "local" and plan.get("server"):
        server = plan["server"]
        deployment["image"] = server.get("image") or deployment_cfg.get("image")
        deployment["command"] = _in_container(server.get("command"), deployment["image"])
    elif executor == "lepton" and plan.get("deployment"):
        spec = plan["deployment"]["body"]["spec"]
        deployment["image"] = spec["container"].get("image")
        deployment["command"] = spec["container"].get("command")
        deployment["resource_shape"] = spec["resource_requirement"].get("resource_shape")
    tasks = []
    plan_tasks = plan.get("tasks") or plan.get("jobs") or []
    for index, job in enumerate(run_plan.invocation.jobs):
        spec = job.spec
        theirs = launcher["tasks"][index] if index < len(launcher["tasks"]) else {}
        sources_ = job_param_sources(spec)
        params = {}
        for key in theirs.get("params", {}):
            params[key] = next((s[key] for s in sources_ if key in s), "<absent>")
        if executor == "lepton":
            env = _lepton_env(plan_tasks[index]["body"]["spec"].get("envs") or [])
        else:
            env = {
                key: ref.shown()
                for key, (_, ref) in job_env(run_plan.invocation.config, index).items()
            }
        tasks.append(
            {
                "name": spec["task"],
                "endpoint_type": spec["endpoint"]["type"],
                "builtin": not spec.get("harness"),
                "params": params,
                "env": env,
            }
        )
    return {"executor": executor, "deployment": deployment, "tasks": tasks}
