"""Configs written for NeMo Evaluator Launcher dry-run unchanged and plan what it would do.

Each fixture in tests/fixtures/launcher_configs (its source in sources.yaml: the launcher's
examples across releases, its documentation pages, its tests) is dry-run by evalfleet with
only the overrides its header comments tell a user to pass, and by the launcher 0.2.6 itself
(reference venv). Both must agree: where the launcher refuses a config evalfleet refuses it
too; otherwise evalfleet's plan has the launcher's deployment (image, command, port, GPUs),
tasks (resolved name, endpoint type), params and env, except the few deliberate
differences listed in DELIBERATE below.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from evalfleet.exceptions import EvalFleetError
from tests.references.harness import run_reference
from tests.references.launcher_plans import (
    command_shape,
    evalfleet_facts,
    evalfleet_plan,
    launcher_facts,
    sources,
)

SOURCES = sources()

# (fixture or "*", fact path) → why evalfleet differs from the launcher on purpose.
DELIBERATE: dict[tuple[str, str], str] = {
    ("*", "tasks.env.api_key"): (
        "the launcher re-exports target.api_endpoint.api_key_name into the eval container;"
        " evalfleet's engine reads that variable by name where it runs (job.json api_key_name)"
    ),
    ("*", "tasks.params.extra.tokenizer"): (
        "built-in log-likelihood tasks read token boundaries from the server's echoed prompt"
        " (lm-eval tokenizes client-side); a warning line says the key is not used"
    ),
    ("*", "tasks.params.extra.tokenizer_backend"): "as tasks.params.extra.tokenizer",
    ("*", "deployment.command --host=127.0.0.1"): (
        "without docker (execution.use_docker, default for vllm/sglang) the local server is a"
        " host process, bound to loopback so the model is not served to the network"
    ),
    ("*", "deployment.mounts"): (
        "the launcher mounts the task's artifacts dir into the server container as /results;"
        " evalfleet's server writes nothing there"
    ),
}


# Fixtures the launcher's dry run accepts but nemo-evaluator refuses once the job runs, in
# the container, after the deployment is paid for. evalfleet refuses them before anything
# starts: fixture → (the task's `nemo_evaluator_config.config` as written, the key named).
REFUSED_AT_RUN_TIME: dict[str, tuple[int, str]] = {
    "local_extra_params": (0, "config.extra"),
    "v0_1_50_slurm_vllm_multinode_dp": (0, "config.params.max_tokens"),
}


# Fixtures with tasks of launcher harnesses whose code is only in the launcher's container
# images (no package on PyPI: nemo_skills, ruler): evalfleet cannot run them and says so
# before anything starts, one line per such task.
UNRUNNABLE_HARNESSES = {"slurm_nemotron_3_nano_nvfp4": ("nemo_skills", "ruler")}


def _task_run_config(name: str, index: int) -> dict[str, Any]:
    """The task's `nemo_evaluator_config.config` over the global one, as the fixture has them."""
    import yaml

    from evalfleet.config._merge import deep_merge
    from tests.references.launcher_plans import FIXTURES

    evaluation = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())["evaluation"]
    task = evaluation["tasks"][index]
    return deep_merge(
        (evaluation.get("nemo_evaluator_config") or {}).get("config") or {},
        (task.get("nemo_evaluator_config") or {}).get("config") or {},
    )


@pytest.fixture(scope="module")
def launcher() -> dict[str, dict[str, Any]]:
    return launcher_facts(SOURCES)


def _differences(name: str, theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    found = []
    if ours["executor"] != theirs["executor"]:
        found.append(f"executor: launcher {theirs['executor']!r}, evalfleet {ours['executor']!r}")
    mine, their_deployment = ours["deployment"], theirs["deployment"]
    for key, expected in their_deployment.items():
        if key in ("mounts", "env") or (name, f"deployment.{key}") in DELIBERATE:
            continue
        got = mine.get(key, "<absent>")
        if key == "command":
            expected, got = (
                command_shape(expected),
                command_shape(got if got != "<absent>" else None),
            )
            if isinstance(got, dict) and _deliberate(name, "deployment.command --host=127.0.0.1"):
                got["options"] = [o for o in got["options"] if o != "--host=127.0.0.1"]
        if got != expected:
            found.append(f"deployment.{key}: launcher {expected!r}, evalfleet {got!r}")
    if len(ours["tasks"]) != len(theirs["tasks"]):
        found.append(f"tasks: launcher {len(theirs['tasks'])}, evalfleet {len(ours['tasks'])}")
    api_key = _api_key_name(name)
    for index, (their, our) in enumerate(zip(theirs["tasks"], ours["tasks"], strict=False)):
        where = f"tasks[{index}] {their['name']}"
        for key in ("name", "endpoint_type"):
            if our[key] != their[key]:
                found.append(f"{where}.{key}: launcher {their[key]!r}, evalfleet {our[key]!r}")
        for key, value in their["params"].items():
            if _deliberate(name, f"tasks.params.{key}") and our["builtin"]:
                continue
            if our["params"].get(key) != value and not _same_auxiliary_url(
                value, our["params"].get(key)
            ):
                found.append(
                    f"{where}.params.{key}: launcher {value!r}, evalfleet {our['params'].get(key)!r}"
                )
        their_env = dict(their["env"])
        if api_key and their_env.get(api_key) == f"host:{api_key}":
            their_env.pop(api_key)  # DELIBERATE tasks.env.api_key
        if our["env"] != their_env:
            found.append(f"{where}.env: launcher {their_env}, evalfleet {our['env']}")
    return found


def _deliberate(name: str, fact: str) -> bool:
    return (name, fact) in DELIBERATE or ("*", fact) in DELIBERATE


def _same_auxiliary_url(theirs: Any, ours: Any) -> bool:
    """The launcher's URL of an auxiliary server names its host only at run time."""
    match = re.fullmatch(r"http://(<\w+ host>)(:\d+/.*)", str(theirs))
    if not match or not isinstance(ours, str):
        return False
    return re.sub(r"^http://[^/:]+", "http://" + match.group(1), ours) == theirs


def _api_key_name(name: str) -> str | None:
    import yaml

    from tests.references.launcher_plans import FIXTURES

    text = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    endpoint = ((text.get("target") or {}).get("api_endpoint")) or {}
    return endpoint.get("api_key_name")


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_launcher_config_plans_as_the_launcher_does(name: str, launcher) -> None:
    entry = SOURCES[name]
    theirs = launcher[name]
    if "error" in theirs:
        # The launcher refuses it: so must evalfleet, with its one-line error.
        with pytest.raises(EvalFleetError) as refused:
            evalfleet_plan(name, entry)
        assert "\n" not in str(refused.value).strip(), str(refused.value)
        return
    if name in UNRUNNABLE_HARNESSES:
        with pytest.raises(EvalFleetError) as refused:
            evalfleet_plan(name, entry)
        lines = str(refused.value).strip().splitlines()
        theirs_names = [task["name"] for task in theirs["facts"]["tasks"]]
        gaps = [n for n in theirs_names if n.split(".")[0] in UNRUNNABLE_HARNESSES[name]]
        assert len(lines) == len(gaps) and all("pins no package" in line for line in lines)
        assert all(any(f"'{gap}'" in line for line in lines) for gap in gaps)
        return
    if name in REFUSED_AT_RUN_TIME:
        index, key = REFUSED_AT_RUN_TIME[name]
        config = _task_run_config(name, index)
        with pytest.raises(EvalFleetError) as refused:
            evalfleet_plan(name, entry)
        assert "\n" not in str(refused.value).strip() and key in str(refused.value)
        (verdict,) = run_reference("evaluation_config", {"cases": [config]})
        assert verdict, f"nemo-evaluator accepts {config}: evalfleet must too"
        assert key.split(".")[-1] in " ".join(verdict), verdict
        return
    run_plan = evalfleet_plan(name, entry)
    facts = theirs["facts"]
    differences = _differences(name, facts, evalfleet_facts(run_plan, facts))
    assert not differences, "\n".join(differences)


def test_every_fixture_has_its_source_recorded() -> None:
    from tests.references.launcher_plans import FIXTURES

    files = sorted(path.stem for path in FIXTURES.glob("*.yaml") if path.stem != "sources")
    assert files == sorted(SOURCES)
    assert len(files) >= 20
    for entry in SOURCES.values():
        assert len(entry["source"]["commit"]) == 40
        assert entry["source"]["path"]
