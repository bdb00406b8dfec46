"""Compose a run configuration: user YAML + built-in groups + overrides → RunConfig.

Order of composition (later wins):
1. the built-in group for the selected `execution.type` and `deployment.type`
   (`groups/execution/*.yaml`, `groups/deployment/*.yaml`);
2. configs named in the user file's Hydra `defaults:` list (in the user's config dir);
3. the user file itself (`_self_`);
4. `-o` overrides, in the order given.

A type is selected by, from strongest to weakest: a `-o deployment=sglang` group switch or
`-o deployment.type=sglang`; the user file's `deployment.type`; the `defaults:` list. A
section the user never mentions gets `execution: local` / `deployment: none`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from evalfleet.config._merge import deep_merge
from evalfleet.config._overrides import GROUPS, apply_override, parse_overrides
from evalfleet.exceptions import ConfigError

MISSING = "???"
_DEFAULT_TYPES = {"execution": "local", "deployment": "none"}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from."""

    model: Any  # RunConfig; typed loosely to keep pydantic out of import time
    resolved: dict[str, Any]  # the merged, interpolated dict that was validated
    source: Path | None
    overrides: list[str] = field(default_factory=list)


def group_options(group: str) -> list[str]:
    folder = resources.files("evalfleet.config") / "groups" / group
    options = {p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")}
    if group == "execution":  # a registered backend needs no group file
        from evalfleet.executors import registry

        options |= set(registry.names())
    return sorted(options)


def group_defaults(group: str, option: str) -> dict[str, Any]:
    path = resources.files("evalfleet.config") / "groups" / group / f"{option}.yaml"
    if path.is_file():
        return yaml.safe_load(path.read_text()) or {}
    options = group_options(group)  # a registered backend without a group file is known here
    if option not in options:
        close = difflib.get_close_matches(option, options, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{group}.type: unknown type {option!r}{hint} (expected one of {', '.join(options)})"
        )
    return {"type": option}


def find_config_file(
    config: str | Path | None, config_dir: str | Path | None, config_name: str | None
) -> Path:
    """The user's YAML file, from `--config FILE` or `--config-dir DIR --config-name NAME`."""
    if config is not None:
        if config_dir is not None or config_name is not None:
            raise ConfigError("give either --config FILE or --config-dir DIR --config-name NAME")
        path = Path(config).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    if config_name is None:
        raise ConfigError(
            "no config given: use --config FILE or --config-dir DIR --config-name NAME"
        )
    directory = Path(config_dir).expanduser() if config_dir is not None else Path.cwd()
    if not directory.is_dir():
        raise ConfigError(f"config directory not found: {directory}")
    for candidate in (config_name, f"{config_name}.yaml", f"{config_name}.yml"):
        path = directory / candidate
        if path.is_file():
            return path
    available = sorted(p.stem for p in directory.glob("*.y*ml"))
    close = difflib.get_close_matches(config_name, available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"config {config_name!r} not found in {directory}{hint}")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML syntax error: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys at the top, got {type(data).__name__}"
        )
    return data


def load_config(
    config: str | Path | None = None,
    *,
    config_dir: str | Path | None = None,
    config_name: str | None = None,
    overrides: list[str] | None = None,
) -> LoadedConfig:
    """Load, compose and validate. Raises ConfigError listing every problem found."""
    overrides = list(overrides or [])
    path = find_config_file(config, config_dir, config_name)
    parsed = parse_overrides(overrides)
    layers, selected = _user_layers(path, [])
    for override in parsed:
        if override.action == "select_group":
            selected[override.path[0]] = str(override.value)
        elif (
            override.path in (("execution", "type"), ("deployment", "type"))
            and isinstance(override.value, str)
            and override.action != "delete"
        ):
            selected[override.path[0]] = override.value
    merged: dict[str, Any] = {}
    present = _sections_present(layers)
    missing_types: list[str] = []
    for group in GROUPS:
        option = selected.get(group)
        # execution's keys mostly mean the same on every backend, so it defaults to local
        # as in the reference launcher; deployment keys (lepton_config…) imply a server type.
        if option is None and group == "deployment" and group in present:
            missing_types.append(group)
            continue
        option = option or _DEFAULT_TYPES[group]
        merged[group] = group_defaults(group, option)
    for layer in layers:
        merged = deep_merge(merged, layer)
    for group in GROUPS:
        if group in selected and isinstance(merged.get(group), dict):
            merged[group]["type"] = selected[group]
    for override in parsed:
        if override.action != "select_group":
            apply_override(merged, override)
    judge = merged.get("judge_deployment")
    if isinstance(judge, dict) and isinstance(judge.get("type"), str) and judge["type"] != "none":
        # A judge deployment takes its server type's defaults, as `deployment` does.
        merged["judge_deployment"] = deep_merge(group_defaults("deployment", judge["type"]), judge)
    resolved = _resolve(merged)
    problems = [
        f"{group}.type: missing mandatory value (expected one of {', '.join(group_options(group))})"
        for group in missing_types
    ]
    if problems:
        raise ConfigError(problems)
    problems = [f"{key}: missing mandatory value" for key in _missing_keys(resolved)]
    model = _validate(resolved, problems)
    return LoadedConfig(model=model, resolved=resolved, source=path, overrides=overrides)


def _user_layers(path: Path, seen: list[Path]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The user file and the configs its `defaults:` list names, in merge order."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in [*seen, path.resolve()])
        raise ConfigError(f"{path}: defaults list includes itself ({chain})")
    data = read_yaml(path)
    defaults = data.pop("defaults", None) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{path}: defaults: expected a list, got {type(defaults).__name__}")
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    selected: dict[str, str] = {}
    self_seen = False
    for entry in defaults:
        if entry == "_self_":
            self_seen = True
            continue
        if isinstance(entry, str):
            parent = path.parent / f"{entry.removesuffix('.yaml')}.yaml"
            if not parent.is_file():
                raise ConfigError(f"{path}: defaults: config {entry!r} not found in {path.parent}")
            layers, parent_selected = _user_layers(parent, [*seen, path.resolve()])
            (after if self_seen else before).extend(layers)
            for group, option in parent_selected.items():
                selected.setdefault(group, option)
            continue
        if isinstance(entry, dict) and len(entry) == 1:
            ((key, option),) = entry.items()
            group = str(key).removeprefix("override ").strip()
            if group in GROUPS and isinstance(option, str):
                selected[group] = option.removesuffix("/default")
                continue
            raise ConfigError(
                f"{path}: defaults: unknown config group {group!r} (expected {' or '.join(GROUPS)})"
            )
        raise ConfigError(f"{path}: defaults: cannot read entry {entry!r}")
    for group in GROUPS:
        section = data.get(group)
        if isinstance(section, dict) and isinstance(section.get("type"), str):
            selected[group] = section["type"]
    # Hydra puts _self_ last unless the list places it; the user file wins over its parents.
    return [*before, data, *after], selected


def _sections_present(layers: list[dict[str, Any]]) -> set[str]:
    return {group for layer in layers for group in GROUPS if layer.get(group)}


def _resolve(merged: dict[str, Any]) -> dict[str, Any]:
    """Resolve `${...}` interpolations (e.g. `${oc.env:USER}`) with OmegaConf."""
    if "${" not in repr(merged):
        return merged
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        container = OmegaConf.create(merged)
        resolved = OmegaConf.to_container(container, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"{key or '(config)'}: cannot resolve interpolation: {reason}") from None
    assert isinstance(resolved, dict)
    return resolved  # type: ignore[return-value]


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [
            key
            for name, value in node.items()
            for key in _missing_keys(value, f"{prefix}.{name}" if prefix else str(name))
        ]
    if isinstance(node, list):
        return [
            key for i, value in enumerate(node) for key in _missing_keys(value, f"{prefix}[{i}]")
        ]
    return [prefix] if node == MISSING else []


def _validate(resolved: dict[str, Any], problems: list[str]) -> Any:
    from pydantic import ValidationError

    from evalfleet.config._errors import drop_missing_explained_by_typos, format_validation_error
    from evalfleet.config.schema import RunConfig

    try:
        model = RunConfig.model_validate(resolved)
    except ValidationError as exc:
        # A `???` value also fails its type check; report it once, as missing.
        missing = {line.split(":")[0] for line in problems}
        lines = [
            line
            for line in format_validation_error(exc, resolved)
            if line.split(":")[0] not in missing
        ]
        raise ConfigError(drop_missing_explained_by_typos(_unique([*problems, *lines]))) from None
    if problems:
        raise ConfigError(problems)
    return model


def _unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))
