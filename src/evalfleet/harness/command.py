"""The command a framework package's task runs, as nemo-evaluator would render it.

nemo-evaluator (0.2.8, `core/input.py`) turns a run config into a command in four steps,
reproduced here without importing it:

1. The task's defaults: the framework's `defaults` (plus framework_name and pkg_name)
   with the evaluation's `defaults` deep-merged over them, None values skipped, then
   validated as its `Evaluation` model and dumped *without* the None fields.
2. The user's run config: `config` and `target` validated as its `EvaluationConfig` and
   `EvaluationTarget` models (unknown keys refused, values coerced the way pydantic's lax
   mode does, e.g. temperature 0 -> 0.0, parallelism "8" -> 8) and dumped *with* every
   field, None included.
3. (2) deep-merged over (1), None values skipped at every depth, so a run config cannot
   unset a default; the result validated again as an `Evaluation` and dumped whole.
4. The command template rendered with that dump (Jinja, undefined names are errors),
   again and again until the text stops changing.

Which fields exist, their defaults and the types they accept come from nemo-evaluator's
own models, recorded in frameworks.json by scripts/refresh_frameworks.py. The adapter
config is left out: evalfleet's proxy takes its place, and no command template reads it.

Every refusal is a one-line ValueError naming the task and the key.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from evalfleet.harness.frameworks import catalog, deep_update, framework, task_defaults

_MAX_RENDER_PASSES = 100  # nemo-evaluator has no limit; a template that never settles is a bug

Field = Mapping[str, Any]


def merged_run_config(harness: str, task: str, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration nemo-evaluator would run `harness`'s `task` with.

    `run_config` is what the launcher writes for nemo-evaluator: {"config": {"type",
    "output_dir", "params": {...}}, "target": {"api_endpoint": {"url", "model_id",
    "type", "api_key_name", ...}}}; other top-level keys (the launcher's `metadata`) are
    ignored, as nemo-evaluator ignores them. `config.type` may be left out (the task's
    own name is used, as the launcher passes it) or spelled `harness.task`.
    Returns the whole `Evaluation` dump (every field, None included) minus the adapter config.
    """
    label = f"{harness}.{task}"
    framework(harness)  # an unknown harness: one line listing the known ones
    defaults = task_defaults(harness, task)
    user = _user_run_config(label, harness, task, run_config)

    fields = _evaluation_fields()
    default_evaluation = _validate_model(label, fields, defaults, "")
    merged = deep_update(
        _dump(fields, default_evaluation, exclude_none=True), user, skip_nones=True
    )
    evaluation = _validate_model(label, fields, merged, "")
    _check_type_compatibility(label, evaluation)
    endpoint = evaluation["target"]["api_endpoint"]
    if isinstance(endpoint, dict):
        endpoint.pop("adapter_config", None)
    return evaluation


def render_command(harness: str, task: str, run_config: Mapping[str, Any]) -> str:
    """The shell command nemo-evaluator renders for this run config, byte for byte."""
    import jinja2  # only when a command is rendered

    values = merged_run_config(harness, task, run_config)
    values["target"]["api_endpoint"]["adapter_config"] = None
    text = str(values["command"])
    for _ in range(_MAX_RENDER_PASSES):
        try:
            rendered = _template(text).render(values)
        except jinja2.UndefinedError as exc:
            raise ValueError(
                f"{harness}.{task}: the command needs {_missing_key(text, values, exc)},"
                " which the run config does not set"
            ) from None
        if rendered == text:
            return rendered
        text = rendered
    raise ValueError(f"{harness}.{task}: the command template never stops changing when rendered")


@lru_cache(maxsize=32)
def _template(text: str) -> Any:
    # Compiling lm-eval's template takes ~25 ms; every task of a harness shares it.
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text)


def check_endpoint_type(harness: str, task: str, endpoint_type: str | None) -> None:
    """Refuse an endpoint type the task does not support, as nemo-evaluator does."""
    types = (task_defaults(harness, task).get("config") or {}).get("supported_endpoint_types")
    _check_endpoint_type(f"{harness}.{task}", types, endpoint_type)


# --- the user's part -------------------------------------------------------------------


def _user_run_config(
    label: str, harness: str, task: str, run_config: Mapping[str, Any]
) -> dict[str, Any]:
    if not isinstance(run_config, Mapping):
        raise ValueError(f"{label}: the run config must be a mapping, got {run_config!r}")
    config = run_config.get("config")
    if not isinstance(config, Mapping):
        raise ValueError(f"{label}: config is required (a mapping with output_dir)")
    config = dict(config)
    if config.get("type") is None:
        config["type"] = task
    if config["type"] not in (task, f"{harness}.{task}"):
        raise ValueError(f"{label}: config.type {config['type']!r} names another task")
    if config.get("output_dir") is None:
        raise ValueError(f"{label}: config.output_dir is required")
    target = run_config.get("target")
    if not isinstance(target, Mapping):
        raise ValueError(f"{label}: target is required (a mapping with api_endpoint)")
    target = copy.deepcopy(dict(target))
    endpoint = target.get("api_endpoint")
    if isinstance(endpoint, dict):
        # nemo-evaluator takes the adapter config out before validating (it merges it
        # with the framework's separately); evalfleet's proxy replaces it.
        endpoint.pop("adapter_config", None)
    fields = {field["name"]: field for field in _evaluation_fields()}
    config_model = fields["config"]["fields"]
    target_model = fields["target"]["fields"]
    return {
        "config": _dump(
            config_model, _validate_model(label, config_model, config, "config."), False
        ),
        "target": _dump(
            target_model, _validate_model(label, target_model, target, "target."), False
        ),
    }


def _check_type_compatibility(label: str, evaluation: Mapping[str, Any]) -> None:
    endpoint = evaluation["target"]["api_endpoint"] or {}
    endpoint_type = endpoint.get("type")
    _check_endpoint_type(label, evaluation["config"]["supported_endpoint_types"], endpoint_type)
    if endpoint_type:
        # Only a task that talks to a model needs one (nemo-evaluator's rule).
        for key in ("url", "model_id"):
            if endpoint.get(key) is None:
                raise ValueError(f"{label}: target.api_endpoint.{key} is required")


def _check_endpoint_type(label: str, supported: Any, endpoint_type: str | None) -> None:
    if supported is None or endpoint_type in supported:
        return
    if endpoint_type is None:
        raise ValueError(
            f"{label}: target.api_endpoint.type is required (the task supports: {', '.join(supported)})"
        )
    raise ValueError(
        f"{label}: does not support endpoint type {endpoint_type!r}"
        f" (target.api_endpoint.type; the task supports: {', '.join(supported)})"
    )


# --- nemo-evaluator's pydantic models, from their recorded fields ----------------------


def _evaluation_fields() -> list[Field]:
    fields: list[Field] = catalog()["evaluation_fields"]
    return fields


def _validate_model(label: str, fields: list[Field], data: Any, path: str) -> dict[str, Any]:
    """`data` as the model would hold it: fields in order, defaults filled, values coerced."""
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{label}: {path.rstrip('.') or 'the run config'} must be a mapping, got {data!r}"
        )
    names = [field["name"] for field in fields]
    unknown = [key for key in data if key not in names]
    if unknown:
        if path == "config.params.":
            raise ValueError(
                f"{label}: config.params.{unknown[0]} is not a parameter"
                f" (valid: {', '.join(names)}; harness-specific ones go under config.params.extra)"
            )
        raise ValueError(
            f"{label}: {path}{unknown[0]} is not a known key (valid: {', '.join(names)})"
        )
    model: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        if name in data:
            model[name] = _validate_value(label, field, data[name], f"{path}{name}")
        elif field["required"]:
            raise ValueError(f"{label}: {path}{name} is required")
        else:
            model[name] = copy.deepcopy(field["default"])
    capabilities = model.get("required_capabilities") if "required_capabilities" in names else None
    if capabilities:
        unknown_capabilities = [
            c for c in capabilities if c not in catalog()["endpoint_capabilities"]
        ]
        if unknown_capabilities:
            raise ValueError(
                f"{label}: {path}required_capabilities names unknown {unknown_capabilities}"
                f" (known: {', '.join(catalog()['endpoint_capabilities'])})"
            )
    return model


def _validate_value(label: str, field: Field, value: Any, path: str) -> Any:
    types: list[str] = field["types"]
    if value is None:
        if "none" in types:
            return None
        raise ValueError(f"{label}: {path} is required")
    kinds = [kind for kind in types if kind != "none"]
    kind = kinds[0]
    if kind == "model:AdapterConfig":
        return copy.deepcopy(value)  # validated by evalfleet's proxy settings, not here
    if kind.startswith("model:"):
        return _validate_model(label, field["fields"], value, f"{path}.")
    try:
        return _coerce(kinds, value)
    except (TypeError, ValueError):
        raise ValueError(f"{label}: {path} must be {_describe(kinds)}, got {value!r}") from None


_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
_INTEGRAL_TEXT = re.compile(r"[+-]?\d[\d_]*(\.0*)?")


def _coerce(kinds: list[str], value: Any) -> Any:
    """pydantic's lax-mode conversions for the kinds nemo-evaluator's models use."""
    if kinds == ["int", "float"]:  # a union: an exact type wins, then int, then float
        if isinstance(value, float) and not isinstance(value, bool):
            return value
        try:
            return _coerce(["int"], value)
        except (TypeError, ValueError):
            return _coerce(["float"], value)
    kind = kinds[0]
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode()
        raise TypeError(value)
    if kind == "int":
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INTEGRAL_TEXT.fullmatch(value.strip()):
            return int(value.strip().split(".")[0])
        raise TypeError(value)
    if kind == "float":
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
        raise TypeError(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise TypeError(value)
    if kind.startswith("enum:"):
        allowed = kind[len("enum:") :].split(",")
        if value == "vlm":  # nemo-evaluator maps the removed 'vlm' type to 'chat'
            return "chat"
        if isinstance(value, str) and value in allowed:
            return value
        raise ValueError(value)
    if kind.startswith("list["):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError(value)
        return list(value)
    if kind == "dict":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise TypeError(value)
        return copy.deepcopy(dict(value))
    return value


def _describe(kinds: list[str]) -> str:
    words = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "dict": "a mapping",
    }
    if kinds[0].startswith("enum:"):
        return "one of " + ", ".join(kinds[0][len("enum:") :].split(","))
    if kinds[0].startswith("list["):
        return "a list of strings"
    return " or ".join(words.get(kind, kind) for kind in kinds)


def _dump(fields: list[Field], model: Mapping[str, Any], exclude_none: bool) -> dict[str, Any]:
    """The model's dump; `exclude_none` drops None fields of models, never inside a dict."""
    dumped: dict[str, Any] = {}
    for field in fields:
        value = model[field["name"]]
        if value is None and exclude_none:
            continue
        if value is not None and "fields" in field:
            value = _dump(field["fields"], value, exclude_none)
        dumped[field["name"]] = copy.deepcopy(value)
    return dumped


def _missing_key(template: str, values: Mapping[str, Any], error: Exception) -> str:
    """The dotted key the template read that is not there (Jinja names only its last part)."""
    import jinja2
    import jinja2.nodes

    match = re.search(r"attribute '([^']+)'|'([^']+)' is undefined", str(error))
    name = (match.group(1) or match.group(2)) if match else None
    try:
        tree = jinja2.Environment().parse(template)
    except jinja2.TemplateError:
        return str(error)
    for node in tree.find_all(jinja2.nodes.Getattr):
        parts: list[str] = []
        current: Any = node
        while isinstance(current, jinja2.nodes.Getattr):
            parts.insert(0, current.attr)
            current = current.node
        if not isinstance(current, jinja2.nodes.Name):
            continue
        parts.insert(0, current.name)
        found: Any = values
        for depth, part in enumerate(parts):
            if isinstance(found, Mapping) and part in found:
                found = found[part]
                continue
            if name is None or part == name:
                return ".".join(parts[: depth + 1])
            break
    return name or str(error)
