"""The command evalfleet renders for a framework package's task is nemo-evaluator's.

For every task of every pinned framework package and a handful of run configs each (the
defaults; the standard params overridden, some as pydantic would coerce them; every
`config.params.extra` default changed, judge settings added; configs nemo-evaluator
refuses), the reference venv runs nemo-evaluator's own `validate_configuration(...)
.render_command()` (driver `harness_commands`) and evalfleet's `render_command` and
`merged_run_config` must give the same command and configuration, or both refuse.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import pytest

from evalfleet.harness.command import merged_run_config, render_command
from evalfleet.harness.frameworks import FrameworkTask, all_tasks
from tests.references.harness import run_reference

URL = "http://127.0.0.1:8000/v1/chat/completions"
ENDPOINT_TYPES = ["chat", "completions", "completions_logprob", "embedding", "undefined"]
JUDGE = {
    "url": "http://judge.example:9000/v1/chat/completions",
    "model_id": "judge-model",
    "api_key_name": "JUDGE_KEY",
    "api_key": "JUDGE_KEY",
}


def _changed(value: Any) -> Any:
    """A different value of the same kind, so every `extra` default is seen overridden."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return value / 2
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, dict):
        return {key: _changed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [*value, "added"]
    return "set-by-test"  # None: the branch a template guards with `is not none`


def _run_config(task: FrameworkTask, endpoint_type: str, **config: Any) -> dict[str, Any]:
    endpoint = {"url": URL, "model_id": "org/model-1", "type": endpoint_type}
    endpoint.update(config.pop("endpoint", {}))
    return {
        "config": {"type": task.name, "output_dir": f"/results/{task.name}", **config},
        "target": {"api_endpoint": endpoint},
    }


def cases_for(task: FrameworkTask) -> list[tuple[str, dict[str, Any]]]:
    """(label, run config) pairs; labels starting with 'refused' must be refused."""
    usual = task.endpoint_types[0] if task.endpoint_types else "chat"
    extra = ((task.defaults.get("config") or {}).get("params") or {}).get("extra") or {}
    changed_extra = {key: _changed(value) for key, value in extra.items()}
    if task.needs_judge:
        changed_extra["judge"] = {**changed_extra.get("judge", {}), **JUDGE}
    cases = [
        ("defaults", _run_config(task, usual)),
        (
            "params",
            _run_config(
                task,
                usual,
                type=task.qualified_name,
                endpoint={"api_key_name": "MODEL_API_KEY"},
                params={
                    "limit_samples": 0.25,
                    "parallelism": 4.0,  # pydantic: 4
                    "temperature": 0,  # pydantic: 0.0
                    "max_new_tokens": "512",  # pydantic: 512
                    "top_p": 0.9,
                    "request_timeout": 120,
                    "max_retries": 2,
                },
            ),
        ),
        (
            "extra",
            _run_config(
                task,
                usual,
                endpoint={"stream": True},
                params={"limit_samples": 12, "parallelism": 16, "extra": changed_extra},
            ),
        ),
        (
            "judge-only" if task.needs_judge else "no-key",
            _run_config(
                task,
                usual,
                params={"extra": {"judge": JUDGE}} if task.needs_judge else {"limit_samples": 1},
            ),
        ),
        ("refused: unknown param", _run_config(task, usual, params={"num_fewshot": 5})),
        ("refused: not an integer", _run_config(task, usual, params={"parallelism": "many"})),
        ("refused: unknown config key", _run_config(task, usual, seed=1)),
    ]
    if task.endpoint_types:
        other = next(t for t in ENDPOINT_TYPES if t not in task.endpoint_types)
        cases.append(("refused: endpoint type", _run_config(task, other)))
    else:
        cases.append(
            ("refused: no model id", _run_config(task, usual, endpoint={"model_id": None}))
        )
    return cases


def _plain(value: Any) -> Any:
    """Through JSON, as the driver's answer came (dates as ISO text)."""
    return json.loads(
        json.dumps(
            value, default=lambda v: v.isoformat() if isinstance(v, datetime.date) else str(v)
        )
    )


@pytest.fixture(scope="module")
def compared() -> list[dict[str, Any]]:
    rows = []
    for task in all_tasks():
        for label, run_config in cases_for(task):
            rows.append({"task": task, "label": label, "run_config": run_config})
    payload = {
        "cases": [
            {"pkg_name": row["task"].framework.pkg_name, "run_config": row["run_config"]}
            for row in rows
        ]
    }
    results = run_reference("harness_commands", payload)["results"]
    assert len(results) == len(rows)
    for row, theirs in zip(rows, results, strict=True):
        row["theirs"] = theirs
    return rows


def test_every_pinned_task_is_compared(compared):
    tasks = {row["task"].qualified_name for row in compared}
    assert len(tasks) == len(all_tasks()) == 313
    assert len({row["task"].harness for row in compared}) == 18


def test_commands_are_nemo_evaluators_byte_for_byte(compared):
    mismatches = []
    rendered = needs_more = 0
    for row in compared:
        task, theirs = row["task"], row["theirs"]
        try:
            ours: dict[str, Any] = {
                "command": render_command(task.harness, task.name, row["run_config"]),
                "merged": _plain(merged_run_config(task.harness, task.name, row["run_config"])),
            }
        except ValueError as exc:
            ours = {"error": str(exc)}
        if "error" in theirs or "error" in ours:
            if ("error" in theirs) != ("error" in ours):
                mismatches.append((task.qualified_name, row["label"], ours, theirs))
            elif not row["label"].startswith("refused"):
                # A template reading a key no default provides (livecodebench's
                # codegeneration_notfast and extra.release_version): both name the key.
                missing = re.search(
                    r"Missing required configuration field: .*'(\w+)'", theirs["error"]
                )
                assert missing, (task.qualified_name, row["label"], theirs)
                assert f".{missing.group(1)}, which the run config does not set" in ours["error"]
                needs_more += 1
            continue
        rendered += 1
        if ours != theirs:
            mismatches.append((task.qualified_name, row["label"], ours, theirs))
    assert not mismatches, f"{len(mismatches)} differ; first: {mismatches[:3]}"
    accepted = sum(1 for row in compared if not row["label"].startswith("refused"))
    assert rendered + needs_more == accepted
    assert needs_more <= 8, "most accepted configs must render, not be refused by both"


def test_what_nemo_evaluator_refuses_evalfleet_refuses_in_one_line(compared):
    for row in compared:
        if not row["label"].startswith("refused"):
            continue
        task = row["task"]
        assert "error" in row["theirs"], (task.qualified_name, row["label"])
        with pytest.raises(ValueError) as refused:
            render_command(task.harness, task.name, row["run_config"])
        message = str(refused.value)
        assert "\n" not in message and message.startswith(f"{task.qualified_name}: ")
