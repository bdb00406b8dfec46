"""nemo-evaluator's own merge and command rendering for framework packages' tasks.

Payload: {"cases": [{"pkg_name": ..., "run_config": {...}}, ...]}. For each case the
driver calls `nemo_evaluator.core.input.validate_configuration(run_config)` and then
`Evaluation.render_command()`, exactly as `nemo-evaluator run_eval` does before it starts
its adapter server. Answer: {"results": [{"command": str, "merged": {...}} |
{"error": "<ExceptionType>: <message>"}, ...]} in the payload's order; `merged` is the
Evaluation's model_dump() without the adapter config (which evalfleet's proxy replaces).

Only the harness named by the case is visible to nemo-evaluator, as in the launcher's
container for that harness (one framework package per image): with all packages in one
venv, a bare task name several packages define would otherwise be refused as ambiguous.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import types
from typing import Any

os.environ.setdefault("NEMO_EVALUATOR_LOG_LEVEL", "ERROR")

import jinja2
import yaml
from driver_io import answer, read_payload
from nemo_evaluator.api import api_dataclasses as ne_api
from nemo_evaluator.core import input as ne_input
from nemo_evaluator.core import utils as ne_utils

# Speed-ups that change nothing nemo-evaluator computes (2,400 cases take ~45 s without):
# the installed packages are listed once; each framework.yml is parsed once (nemo-evaluator
# only reads the result: get_evaluation dumps the default Evaluation, never changes it);
# a Jinja template is compiled once per source text (a compiled template is a pure
# function of its source); the YAML dump that only feeds an info log line is skipped.
_installed = ne_input._get_harness_packages()
_visible: set[str] = set()


def _only_visible_packages() -> list[Any]:
    return [package for package in _installed if package.name in _visible]


_definitions: dict[str, Any] = {}
_load_definitions = ne_input._get_framework_evaluations


def _definitions_once(def_file: str, *, include_internal: bool = True) -> Any:
    key = f"{def_file}:{include_internal}"
    if key not in _definitions:
        _definitions[key] = _load_definitions(def_file, include_internal=include_internal)
    return _definitions[key]


def _once(method: Any) -> Any:
    done: dict[str, Any] = {}

    def cached(source: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or not isinstance(source, str):
            return method(source, *args, **kwargs)
        if source not in done:
            done[source] = method(source)
        return done[source]

    return cached


def _environment() -> jinja2.Environment:
    environment = ne_utils.get_jinja2_environment()  # nemo-evaluator's own settings
    environment.from_string = _once(environment.from_string)  # type: ignore[method-assign]
    environment.parse = _once(environment.parse)  # type: ignore[method-assign]
    return environment


_shared_environment = _environment()
ne_input._get_harness_packages = _only_visible_packages
ne_input._get_framework_evaluations = _definitions_once
ne_input.yaml = types.SimpleNamespace(safe_load=yaml.safe_load, dump=lambda *a, **k: "")
ne_api.get_jinja2_environment = lambda: _shared_environment
ne_utils.get_jinja2_environment = lambda: _shared_environment


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    _visible.clear()
    _visible.add(case["pkg_name"])
    try:
        evaluation = ne_input.validate_configuration(copy.deepcopy(case["run_config"]))
        command = evaluation.render_command()
    except Exception as exc:  # the test compares refusals, whatever their type
        return {"error": f"{type(exc).__name__}: {exc}"}
    merged = evaluation.model_dump()
    merged["target"]["api_endpoint"].pop("adapter_config", None)
    # YAML dates (livecodebench's start_date) go as their ISO text, as Jinja prints them.
    merged = json.loads(json.dumps(merged, default=_iso))
    return {"command": command, "merged": merged}


def _iso(value: Any) -> str:
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def main() -> None:
    payload = read_payload()
    answer({"results": [run_case(case) for case in payload["cases"]]})


if __name__ == "__main__":
    main()
