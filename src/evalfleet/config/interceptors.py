"""Interceptor settings, configured per task: what they are and whether they are valid.

```yaml
interceptors:
  system_prompt: {mode: replace, text: "You are ..."}   # set | prepend | replace
  reasoning: {strip: true, start: "<think>", end: "</think>"}
  request_params: {add: {k: v}, remove: [k], rename: {old: new}}
  log_samples: 5          # log the first N requests and responses to logs/requests.jsonl
```

NeMo Evaluator Launcher's `adapter_config` (legacy flags and its `interceptors:` list) is
translated into this form, so its configs keep working.

This module only describes them: `parse_interceptors` validates the settings and returns an
`InterceptorSettings` (frozen dataclasses, nothing else). The engine applies them to
requests and answers (`evalfleet.engine.interceptors`, built from that description).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from evalfleet.exceptions import ConfigError


@dataclass(frozen=True)
class SystemPrompt:
    mode: Literal["set", "prepend", "replace"]
    text: str


@dataclass(frozen=True)
class Reasoning:
    start: str = "<think>"
    end: str = "</think>"


@dataclass(frozen=True)
class InterceptorSettings:
    """One job's validated interceptor settings; `None` or empty means not configured."""

    system_prompt: SystemPrompt | None = None
    reasoning: Reasoning | None = None  # strip the reasoning between these two markers
    add: dict[str, Any] = field(default_factory=dict)  # request_params.add, merged deep
    remove: tuple[str, ...] = ()
    rename: dict[str, str] = field(default_factory=dict)
    log_samples: int = 0


def canonical_interceptors(config: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """Our own form as given, or NeMo Evaluator Launcher's adapter_config translated to it."""
    config = dict(config or {})
    if isinstance(config.get("interceptors"), list) or any(key in config for key in _NEL_FLAGS):
        return _from_nel(config, where)
    return config


def merge_interceptors(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win per interceptor; `request_params` merges its add/remove/rename."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if (
                key == "request_params"
                and isinstance(merged.get(key), dict)
                and isinstance(value, dict)
            ):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def parse_interceptors(
    config: dict[str, Any] | None, where: str = "interceptors"
) -> InterceptorSettings:
    """Validate interceptor settings (either form); every error names the key."""
    config = canonical_interceptors(config, where)
    known = {"system_prompt", "reasoning", "request_params", "log_samples"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown interceptor (expected one of {', '.join(sorted(known))})"
        )
    system = config.get("system_prompt")
    if system is not None:
        if isinstance(system, str):
            system = {"mode": "replace", "text": system}
        mode = system.get("mode", "replace")
        if mode not in ("set", "prepend", "replace") or not isinstance(system.get("text"), str):
            raise ConfigError(
                f"{where}.system_prompt: expected {{mode: set|prepend|replace, text: ...}}"
            )
        system = SystemPrompt(mode, system["text"])
    reasoning = config.get("reasoning")
    if reasoning is not None:
        if reasoning is True or (isinstance(reasoning, dict) and reasoning.get("strip", True)):
            options = reasoning if isinstance(reasoning, dict) else {}
            reasoning = Reasoning(options.get("start", "<think>"), options.get("end", "</think>"))
        else:
            reasoning = None
    params = config.get("request_params") or {}
    if not isinstance(params, dict) or set(params) - {"add", "remove", "rename"}:
        raise ConfigError(
            f"{where}.request_params: expected {{add: {{}}, remove: [], rename: {{}}}}"
        )
    log_samples = config.get("log_samples", 0)
    if not isinstance(log_samples, int) or log_samples < 0:
        raise ConfigError(f"{where}.log_samples: expected a non-negative integer")
    return InterceptorSettings(
        system_prompt=system,
        reasoning=reasoning,
        add=dict(params.get("add") or {}),
        remove=tuple(params.get("remove") or ()),
        rename=dict(params.get("rename") or {}),
        log_samples=log_samples,
    )


_NEL_FLAGS = ("use_system_prompt", "custom_system_prompt", "process_reasoning_traces",
              "use_request_logging", "max_logged_requests", "params_to_add", "params_to_remove",
              "params_to_rename", "start_reasoning_token", "end_reasoning_token")  # fmt: skip


def _from_nel(adapter: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    params: dict[str, Any] = {}
    if adapter.get("use_system_prompt") and adapter.get("custom_system_prompt"):
        out["system_prompt"] = {"mode": "replace", "text": adapter["custom_system_prompt"]}
    if adapter.get("process_reasoning_traces"):
        out["reasoning"] = {
            "start": adapter.get("start_reasoning_token", "<think>"),
            "end": adapter.get("end_reasoning_token", "</think>"),
        }
    if adapter.get("use_request_logging"):
        out["log_samples"] = int(adapter.get("max_logged_requests") or 5)
    for ours, theirs in (
        ("add", "params_to_add"),
        ("remove", "params_to_remove"),
        ("rename", "params_to_rename"),
    ):
        if adapter.get(theirs):
            params[ours] = adapter[theirs]
    for entry in adapter.get("interceptors") or []:
        name, settings = entry.get("name"), entry.get("config") or {}
        if name == "system_message":
            out["system_prompt"] = {"mode": "replace", "text": settings.get("system_message", "")}
        elif name == "reasoning":
            out["reasoning"] = {
                "start": settings.get("start_reasoning_token", "<think>"),
                "end": settings.get("end_reasoning_token", "</think>"),
            }
        elif name == "payload_modifier":
            for ours, theirs in (
                ("add", "params_to_add"),
                ("remove", "params_to_remove"),
                ("rename", "params_to_rename"),
            ):
                if settings.get(theirs):
                    params[ours] = settings[theirs]
        elif name in ("request_logging", "response_logging"):
            out["log_samples"] = int(
                settings.get("max_requests") or settings.get("max_responses") or 5
            )
        elif name in ("endpoint", "caching", "response_stats", "progress_tracking"):
            continue  # built into the engine
        else:
            raise ConfigError(f"{where}.interceptors: interceptor {name!r} is not supported")
    if params:
        out["request_params"] = params
    return out
