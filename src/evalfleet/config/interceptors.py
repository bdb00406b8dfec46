"""Interceptor settings, configured per task: what they are and whether they are valid.

```yaml
interceptors:
  system_prompt: {mode: prepend, text: "You are ..."}   # prepend | append | replace | set
  reasoning: {strip: true, start: "<think>", end: "</think>"}
  request_params: {add: {k: v}, remove: [k], rename: {old: new}}
  log_samples: 5          # log the first N requests and responses to logs/requests.jsonl
```

NeMo Evaluator Launcher's `adapter_config` (legacy flags and its `interceptors:` list) is
translated into this form, so its configs keep working. Its layers (global, then a task's)
merge as the launcher merges them, key by key before translation (`merge_adapter_configs`),
so a task that sets only `custom_system_prompt` keeps the global `use_system_prompt: true`.
A system prompt's mode is nemo-evaluator's `system_message` strategy, `prepend` by default:
the prompt goes before the request's own system message(s).

This module only describes them: `parse_interceptors` validates the settings and returns an
`InterceptorSettings` (frozen dataclasses, nothing else). The engine applies them to
requests and answers (`evalfleet.engine.interceptors`, built from that description).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from evalfleet.exceptions import ConfigError

SYSTEM_PROMPT_MODES = ("prepend", "append", "replace", "set")
# nemo-evaluator's system_message interceptor's default strategy (since its 25.11).
DEFAULT_SYSTEM_PROMPT_MODE = "prepend"


@dataclass(frozen=True)
class SystemPrompt:
    """`mode`: prepend/append join it with the request's system message(s) by a newline,
    replace drops theirs, set applies it only where the request has none."""

    mode: Literal["prepend", "append", "replace", "set"]
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
    if is_adapter_config(config):
        return _from_nel(config, where)
    return config


def is_adapter_config(config: dict[str, Any] | None) -> bool:
    """Whether `config` is written in NeMo Evaluator Launcher's adapter_config form."""
    config = config or {}
    nel_keys = (*_NEL_FLAGS, *_NEL_ENGINE_KEYS, *_NEL_UNSUPPORTED)
    return isinstance(config.get("interceptors"), list) or any(key in config for key in nel_keys)


def merge_adapter_configs(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """adapter_config layers merged as the launcher merges its `nemo_evaluator_config`
    layers (OmegaConf): mappings key by key, anything else (the `interceptors` list too)
    replaced by the later layer."""
    from evalfleet.config._merge import deep_merge

    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer or {})
    return merged


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
            system = {"text": system}
        mode = system.get("mode", DEFAULT_SYSTEM_PROMPT_MODE) if isinstance(system, dict) else None
        if mode not in SYSTEM_PROMPT_MODES or not isinstance(system.get("text"), str):
            raise ConfigError(
                f"{where}.system_prompt: expected {{mode: {'|'.join(SYSTEM_PROMPT_MODES)}, "
                "text: ...}"
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
              "use_reasoning", "use_request_logging", "max_logged_requests", "params_to_add",
              "params_to_remove", "params_to_rename", "start_reasoning_token",
              "end_reasoning_token")  # fmt: skip
# nemo-evaluator's other adapter_config keys: what they switch (response cache, statistics,
# reports, logging of responses, progress) evalfleet's engine always does its own way.
_NEL_ENGINE_KEYS = ("use_caching", "save_responses", "save_requests", "use_response_logging",
                    "max_logged_responses", "max_saved_requests", "max_saved_responses",
                    "use_progress_tracking", "progress_tracking_url", "progress_tracking_interval",
                    "tracking_requests_stats", "logging_aggregated_stats_interval",
                    "generate_html_report", "html_report_size", "include_json",
                    "log_failed_requests", "caching_dir", "output_dir", "mode", "endpoint_type",
                    "include_if_reasoning_not_finished", "track_reasoning", "discovery",
                    "post_eval_hooks")  # fmt: skip
# Keys that change requests in ways evalfleet does not reproduce: refused, never ignored.
_NEL_UNSUPPORTED = ("use_omni_info", "use_nvcf", "use_raise_client_errors", "headers_to_add",
                    "headers_to_remove", "headers_to_rename")  # fmt: skip


def _from_nel(adapter: dict[str, Any], where: str) -> dict[str, Any]:
    known = {*_NEL_FLAGS, *_NEL_ENGINE_KEYS, *_NEL_UNSUPPORTED, "interceptors"}
    unknown = sorted(set(adapter) - known)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: not an adapter_config key of nemo-evaluator "
            "(e.g. use_system_prompt, custom_system_prompt, use_reasoning, params_to_add, "
            "interceptors)"
        )
    for key in _NEL_UNSUPPORTED:
        if adapter.get(key):
            raise ConfigError(f"{where}.{key}: not supported by evalfleet's engine")
    out: dict[str, Any] = {}
    params: dict[str, Any] = {}
    if adapter.get("interceptors"):
        # nemo-evaluator reads the legacy flags only when no interceptor list is given.
        adapter = {"interceptors": adapter["interceptors"]}
    if adapter.get("use_system_prompt") and adapter.get("custom_system_prompt") is not None:
        out["system_prompt"] = {
            "mode": DEFAULT_SYSTEM_PROMPT_MODE,
            "text": str(adapter["custom_system_prompt"]),
        }
    # `use_reasoning` is nemo-evaluator's older name of process_reasoning_traces: either on
    # turns the reasoning interceptor on.
    if adapter.get("process_reasoning_traces") or adapter.get("use_reasoning"):
        out["reasoning"] = {
            "start": adapter.get("start_reasoning_token") or "<think>",
            "end": adapter.get("end_reasoning_token") or "</think>",
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
        entry = {"name": entry} if isinstance(entry, str) else entry  # nemo-evaluator's sugar
        if not isinstance(entry, dict) or entry.get("enabled", True) is False:
            continue
        name, settings = entry.get("name"), entry.get("config") or {}
        if name == "system_message":
            mode = settings.get("strategy", DEFAULT_SYSTEM_PROMPT_MODE)
            if mode not in SYSTEM_PROMPT_MODES[:3]:
                raise ConfigError(
                    f"{where}.interceptors: system_message strategy {mode!r} is not one of "
                    f"{', '.join(SYSTEM_PROMPT_MODES[:3])}"
                )
            out["system_prompt"] = {"mode": mode, "text": settings.get("system_message", "")}
        elif name == "reasoning":
            out["reasoning"] = {
                "start": settings.get("start_reasoning_token") or "<think>",
                "end": settings.get("end_reasoning_token") or "</think>",
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
